"""A model's layers, output shapes, parameter counts and FLOPs, as a table: :func:`summary`.

What Keras users get from ``model.summary()`` and Flax users from ``Module.tabulate``, as
data first (:class:`ModelSummary`, with ``rows``, totals and :meth:`ModelSummary.to_dict`)
and a plain-text table second (``str(summary)``, no terminal styling, so it reads the same
in a log file). Nothing is allocated or compiled: shapes come from :func:`jax.eval_shape`,
FLOPs from XLA's cost analysis of the lowered (not compiled) computation.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl._core.checks import is_int
from jdl.nn.utils import count_params

__all__ = ["LayerSummary", "ModelSummary", "summary"]


@dataclass(frozen=True)
class LayerSummary:
    """One row of a :class:`ModelSummary`: a module call and what it holds.

    Attributes:
      path: the module's path in the variables tree (``"Dense_0"``, ``"block1/conv1"``);
        ``""`` for the model itself.
      kind: the module's class name (``"Dense"``, ``"BasicBlock"``).
      output_shape: the shape of its output (a tuple of ints), or a tuple of such shapes
        when it returns several arrays.
      params: trainable parameters (``"params"``) in its subtree.
      state: other variables in its subtree (BatchNorm running statistics), not trained.
      flops: floating-point operations of one call at the sample's batch size, as XLA's cost
        analysis counts them (a multiply-add is 2), or ``None`` where XLA gives no estimate.
    """

    path: str
    kind: str
    output_shape: tuple[Any, ...]
    params: int
    state: int
    flops: float | None


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` returns: the rows, the totals, and a text table as ``str()``.

    Attributes:
      model: the model's class name.
      input_shape: the sample's shape (batch axis included).
      rows: one :class:`LayerSummary` per module call down to the requested depth, in call
        order, the model itself last.
      params: trainable parameters of the whole model.
      state: non-trainable variables of the whole model (BatchNorm statistics).
      flops: FLOPs of one forward pass at the sample's batch size (``None`` if unknown).
    """

    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerSummary, ...]
    params: int
    state: int
    flops: float | None
    train: bool = field(default=False)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (lists instead of tuples)."""

        def shape(s: Any) -> Any:
            return [shape(x) for x in s] if isinstance(s, tuple) else s

        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "train": self.train,
            "params": self.params,
            "state": self.state,
            "flops": self.flops,
            "rows": [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "output_shape": shape(r.output_shape),
                    "params": r.params,
                    "state": r.state,
                    "flops": r.flops,
                }
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        header = ("layer", "type", "output shape", "params", "FLOPs")
        lines = [
            (
                r.path or "(model)",
                r.kind,
                _shape_text(r.output_shape),
                f"{r.params:,}",
                _flops(r.flops),
            )
            for r in self.rows
        ]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

        def row(cells: Sequence[str]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3], strict=True)]
            right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
            return "  ".join(left + right).rstrip()

        rule = "-" * len(row(header))
        mode = "train" if self.train else "inference"
        out = [f"{self.model} on inputs {self.input_shape} ({mode} mode)", rule, row(header), rule]
        out += [row(line) for line in lines]
        out += [
            rule,
            f"trainable parameters: {self.params:,}",
            f"non-trainable variables: {self.state:,}",
            f"FLOPs per forward pass: {_flops(self.flops)}",
        ]
        return "\n".join(out)


def summary(
    model: nn.Module,
    sample: Any,
    *,
    depth: int | None = 1,
    train: bool = False,
    flops: bool = True,
) -> ModelSummary:
    """Tabulate a model: each layer's output shape, parameter count and FLOPs.

    ``print(jdl.nn.summary(model, x))`` prints the table; the returned
    :class:`ModelSummary` holds the same numbers as data. The model is initialised
    abstractly (:func:`jax.eval_shape`): nothing is allocated, nothing compiled, so it works
    for ResNet-152 at 224×224 in a second or two.

    Args:
      model: a :class:`flax.linen.Module` (any jdl model or a user's own).
      sample: a batch of inputs (an array), a :class:`jax.ShapeDtypeStruct`, or a shape
        tuple (batch axis included; float32).
      depth: how deep to list submodules: 1 (default) the model's direct children, ``None``
        every module, 0 only the model.
      train: summarise the training-mode call (dropout on, BatchNorm on batch statistics),
        which can differ in FLOPs.
      flops: ask XLA for FLOP estimates (one lowering per listed module; ``False`` skips it).

    Returns:
      A :class:`ModelSummary`.

    Raises:
      TypeError: if ``model`` is not a flax module or ``sample`` is not an array, a
        ``ShapeDtypeStruct`` or a tuple of ints.
      ValueError: if ``depth`` is negative.

    Example:
      >>> from jdl import nn
      >>> s = nn.summary(nn.MLP(widths=(100,), num_outputs=10), (1, 40))
      >>> [(r.path, r.output_shape, r.params) for r in s.rows]
      [('Dense_0', (1, 100), 4100), ('head', (1, 10), 1010), ('', (1, 10), 5110)]
      >>> s.flops
      10210.0
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary expects a flax.linen.Module, got {type(model).__name__}")
    if depth is not None and (not is_int(depth) or depth < 0):
        raise ValueError(f"summary depth must be None or an int >= 0, got {depth!r}")
    x = _abstract_sample(sample)
    kwargs = {"train": train} if _takes_train(model) else {}
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = jax.eval_shape(lambda x: model.init(rngs, x, **kwargs), x)
    calls = _record_calls(model, variables, x, kwargs, rngs, depth)
    rows = tuple(
        LayerSummary(
            path="/".join(path),
            kind=kind,
            output_shape=out,
            params=count_params(_subtree(variables, "params", path)),
            state=sum(
                count_params(_subtree(variables, col, path)) for col in variables if col != "params"
            ),
            flops=_module_flops(module, variables, path, args, kw) if flops else None,
        )
        for path, kind, out, module, args, kw in calls
    )
    top = rows[-1]
    return ModelSummary(
        model=type(model).__name__,
        input_shape=tuple(x.shape),
        rows=rows,
        params=top.params,
        state=top.state,
        flops=top.flops,
        train=train,
    )


def _abstract_sample(sample: Any) -> jax.ShapeDtypeStruct:
    if isinstance(sample, jax.ShapeDtypeStruct):
        return sample
    if isinstance(sample, tuple) and sample and all(is_int(d) and d >= 1 for d in sample):
        return jax.ShapeDtypeStruct(tuple(int(d) for d in sample), jnp.float32)
    if hasattr(sample, "shape") and hasattr(sample, "dtype"):
        return jax.ShapeDtypeStruct(tuple(sample.shape), sample.dtype)
    if isinstance(sample, list):
        array = np.asarray(sample)
        return jax.ShapeDtypeStruct(array.shape, array.dtype)
    raise TypeError(
        "summary expects a sample batch: an array, a jax.ShapeDtypeStruct or a shape tuple of "
        f"positive ints (batch axis included), got {type(sample).__name__}: {sample!r}"
    )


def _takes_train(model: nn.Module) -> bool:
    try:
        parameters = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return False
    return "train" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _record_calls(model, variables, x, kwargs, rngs, depth):
    """Each ``__call__`` down to ``depth``: (path, kind, output shape, module, args, kwargs)."""
    calls: list[tuple[Any, ...]] = []

    def interceptor(next_fun, args, kw, context):
        out = next_fun(*args, **kw)
        module = context.module
        path = tuple(module.path) if module.path is not None else ()
        if context.method_name == "__call__" and (depth is None or len(path) <= depth):
            abstract = jax.tree.map(_to_abstract, (args, kw))
            calls.append(
                (path, type(module).__name__, _shape_of(out), module.clone(parent=None), *abstract)
            )
        return out

    with nn.intercept_methods(interceptor):
        jax.eval_shape(
            lambda v, x: model.apply(v, x, mutable=True, rngs=rngs, **kwargs), variables, x
        )
    # Shared modules called twice appear once, at their first call; the model itself last.
    seen: set[tuple[str, ...]] = set()
    unique = []
    for call in calls:
        if call[0] not in seen:
            seen.add(call[0])
            unique.append(call)
    unique.sort(key=lambda c: c[0] == ())
    return unique


def _to_abstract(leaf: Any) -> Any:
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype)
    return leaf


def _shape_of(out: Any) -> tuple[Any, ...]:
    if hasattr(out, "shape"):
        return tuple(int(d) for d in out.shape)
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(out) if hasattr(leaf, "shape")]
    if len(leaves) == 1:
        return tuple(int(d) for d in leaves[0].shape)
    return tuple(tuple(int(d) for d in leaf.shape) for leaf in leaves)


def _subtree(variables: Any, collection: str, path: tuple[str, ...]) -> Any:
    node = variables.get(collection, {})
    for part in path:
        if not hasattr(node, "get") or part not in node:
            return {}
        node = node[part]
    return node


def _module_flops(module, variables, path, args, kw) -> float | None:
    """XLA's FLOP count for one call of ``module`` on abstract inputs (None if unknown)."""
    sub = {col: _subtree(variables, col, path) for col in variables}
    sub = {col: tree for col, tree in sub.items() if jax.tree_util.tree_leaves(tree)}
    is_array = [isinstance(a, jax.ShapeDtypeStruct) for a in args]
    array_args = [a for a, arr in zip(args, is_array, strict=True) if arr]
    array_kw = {k: v for k, v in kw.items() if isinstance(v, jax.ShapeDtypeStruct)}
    static_kw = {k: v for k, v in kw.items() if k not in array_kw}

    def call(v, arrays, named):
        it = iter(arrays)
        full = [next(it) if arr else a for a, arr in zip(args, is_array, strict=True)]
        rngs = {"dropout": jax.random.key(0)}
        return module.apply(v, *full, mutable=True, rngs=rngs, **named, **static_kw)

    try:
        lowered = jax.jit(call).lower(sub, array_args, array_kw)
        cost = lowered.cost_analysis()
    except Exception:  # noqa: BLE001 -- an estimate; any failure means "unknown"
        return None
    if "while" in lowered.as_text():
        return None  # XLA counts a loop's body once, whatever its trip count: no estimate
    if isinstance(cost, list):  # older jax: one dict per computation
        cost = cost[0] if cost else None
    value = (cost or {}).get("flops")
    return None if value is None or not math.isfinite(value) or value < 0 else float(value)


def _shape_text(shape: tuple[Any, ...]) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _flops(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f}"
