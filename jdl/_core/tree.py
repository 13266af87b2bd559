"""``"collection/module/.../leaf"`` paths of variable trees, and comparing trees by shape.

One home for the path conventions every layer uses: pretrained loaders key converted
weights by such paths, ``fit(variables=...)`` and checkpoint restores list what does not fit
by them, the freezing transform matches them against names, and the analyses find a layer's
parameters and intermediates by them.

Two kinds of tree are handled:

- nested mappings (Flax variables, parameters, ``intermediates``): :func:`flatten`,
  :func:`unflatten`, :func:`get_path`, :func:`own_leaves` -- leaves are whatever is not a
  mapping, kept as they are;
- any JAX pytree (a whole ``TrainState`` with its optax state): :func:`leaf_paths` and
  :func:`path_str` name each leaf from its JAX key path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

#: The separator of the parts of a path.
SEP = "/"

Shape = tuple[int, ...]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"params": {"fc": {"bias": a}}}`` -> ``{"params/fc/bias": a}`` (leaves untouched).

    Args:
      tree: nested mappings; every value that is not a mapping is a leaf.
      prefix: a path to put in front of every key.

    Returns:
      A flat dict from path to leaf, in the tree's (depth-first) order. Empty mappings
      have no leaves and leave no trace.

    Example:
      >>> flatten({"params": {"fc": {"bias": 1, "kernel": 2}}})
      {'params/fc/bias': 1, 'params/fc/kernel': 2}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{SEP}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`: nested plain dicts from ``"a/b/c"`` keys.

    Raises:
      ValueError: if a path is both a leaf and a prefix of another path, or appears twice.

    Example:
      >>> unflatten({"params/fc/bias": 1, "params/fc/kernel": 2})
      {'params': {'fc': {'bias': 1, 'kernel': 2}}}
    """
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(SEP)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"variable path {path!r} runs through a leaf at {part!r}")
        if leaf in node:
            raise ValueError(f"variable path {path!r} appears twice")
        node[leaf] = value
    return out


def get_path(tree: Mapping[str, Any], path: str) -> Any:
    """The node of nested mappings at ``"a/b/c"``, or ``None`` where there is none.

    Example:
      >>> get_path({"Dense_0": {"kernel": 1}}, "Dense_0/kernel"), get_path({}, "Dense_0")
      (1, None)
    """
    node: Any = tree
    for part in path.split(SEP):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def own_leaves(tree: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The leaves the node at ``path`` holds directly (e.g. a layer's own parameters).

    Returns:
      ``{name: leaf}`` for the node's children that are not mappings; ``{}`` when there is
      no node at ``path``.

    Example:
      >>> own_leaves({"block": {"scale": 1, "Dense_0": {"kernel": 2}}}, "block")
      {'scale': 1}
    """
    node = get_path(tree, path)
    if not isinstance(node, Mapping):
        return {}
    return {k: v for k, v in node.items() if not isinstance(v, Mapping)}


def key_name(key: Any) -> str:
    """The name of one entry of a JAX key path: a dict key, an attribute name or an index."""
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def path_str(path: Sequence[Any]) -> str:
    """A JAX key path (from :func:`jax.tree_util.tree_flatten_with_path`) as ``"a/b/0"``.

    Example:
      >>> [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1, 2]})[0]]
      ['a/0', 'a/1']
    """
    return SEP.join(key_name(k) for k in path)


def leaf_paths(tree: Any) -> dict[str, Any]:
    """``{path: leaf}`` for every leaf of any pytree (tuples, dataclasses, optax states).

    Unlike :func:`flatten`, the tree need not be nested mappings, and ``None`` is no leaf.

    Example:
      >>> leaf_paths({"step": 3, "params": {"w": 1.0}})
      {'params/w': 1.0, 'step': 3}
    """
    return {path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def compare_shapes(
    wanted: Mapping[str, Sequence[int]],
    found: Mapping[str, Sequence[int]],
    *,
    key: Callable[[str], Any] | None = None,
) -> tuple[list[str], list[str], list[tuple[str, Shape, Shape]]]:
    """Compare two flat ``path -> shape`` maps: what a model wants vs what was given.

    Args:
      wanted: the shapes expected (e.g. of a model's fresh variables).
      found: the shapes given (a weight file, a checkpoint, ``fit(variables=...)``).
      key: sort key for the paths (default: the paths themselves).

    Returns:
      ``(missing, unexpected, mismatched)``, each sorted by path: paths only in ``wanted``,
      paths only in ``found``, and ``(path, wanted_shape, found_shape)`` where both have the
      path but the shapes differ.

    Example:
      >>> compare_shapes({"a": (2,), "b": (3,)}, {"b": (4,), "c": ()})
      (['a'], ['c'], [('b', (3,), (4,))])
    """
    order = key if key is not None else (lambda path: path)
    missing = sorted((k for k in wanted if k not in found), key=order)
    unexpected = sorted((k for k in found if k not in wanted), key=order)
    mismatched = sorted(
        (
            (k, tuple(wanted[k]), tuple(found[k]))
            for k in found
            if k in wanted and tuple(found[k]) != tuple(wanted[k])
        ),
        key=lambda item: order(item[0]),
    )
    return missing, unexpected, mismatched
