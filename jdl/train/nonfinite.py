"""Counting NaN and inf values: on the device inside a debug train step, on the host in a state.

The device half is what ``train_step(..., debug=True)`` (and so ``jdl.fit(debug=True)``)
adds to a step's metrics, as small integer vectors, so checking every step costs no host
synchronisation: they are fetched with the other metrics every ``log_every`` steps and read
by :class:`jdl.train.debug.DebugMonitor`. Per step it counts the non-finite values

- of each floating-point field of the input batch (``"debug/inputs"``), with the position
  in the batch of the first example holding one (``"debug/first_example"``, ``-1`` if none),
- of the total loss (``"debug/loss"``, 0 or 1),
- of each layer's output (``"debug/layers"``): an interceptor
  (:func:`flax.linen.intercept_methods`) ``sow``\\ s the count of every module's
  ``__call__`` output into the ``"debug_nonfinite"`` collection (modules inside a lifted
  ``scan``, such as the cells of an ``nn.RNN``, cannot export it: their layer counts for
  them),
- of each parameter's gradient (``"debug/grads"``) and of each variable (parameters and
  BatchNorm statistics) after the update (``"debug/variables"``);
- and, for integer class labels, how many lie outside ``[0, num_outputs)``
  (``"debug/labels"``: count, lowest, highest label, number of outputs) -- a label the
  first-batch check of a streamed source could not see.

The order of each vector is the one :class:`DebugLayout` names on the host. The host half,
:func:`non_finite_leaves` and :func:`describe_non_finite`, names the non-finite
parameters of a state for :class:`jdl.train.callbacks.TerminateOnNaN` and the checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl._core.tree import SEP, get_path, leaf_paths
from jdl.train.state import model_input, model_kwargs

__all__ = ["DEBUG_PREFIX", "DebugLayout", "describe_non_finite", "non_finite_leaves"]

DEBUG_PREFIX = "debug/"
"""The prefix of the metric names a debug train step adds (``"debug/grads"``, ...)."""

COLLECTION = "debug_nonfinite"
"""The Flax collection the layer counts are sown into during a debug step."""

_SOWN = "nonfinite_count"
_NO_EXAMPLE = np.iinfo(np.int32).max


def _is_float(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def _count(tree: Any) -> jax.Array | None:
    """The number of NaN/inf values among the floating-point leaves of ``tree`` (int32), or
    ``None`` when it has no floating-point leaf."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(tree) if _is_float(leaf)]
    if not leaves:
        return None
    return sum(jnp.sum(~jnp.isfinite(leaf), dtype=jnp.int32) for leaf in leaves)


def _counts(leaves: list[Any]) -> jax.Array:
    """One count per leaf (0 for a leaf that is not floating-point), as an int32 vector."""
    zero = jnp.zeros((), jnp.int32)
    values = [c if (c := _count(leaf)) is not None else zero for leaf in leaves]
    return jnp.stack(values) if values else jnp.zeros((0,), jnp.int32)


def float_fields(batch: Mapping[str, Any]) -> tuple[str, ...]:
    """The batch's floating-point fields, sorted: the entries of ``"debug/inputs"``."""
    return tuple(k for k in sorted(batch) if _is_float(batch[k]))


class LayerCounter:
    """An ``intercept_methods`` interceptor: sows the non-finite count of each module's
    output and records the modules in the order their ``__call__`` returned (forward order,
    a child before its parent).

    Attributes:
        order: module paths (``"layer1_0/conv1"``) in forward order, each once.
    """

    def __init__(self) -> None:
        self.order: list[str] = []

    def __call__(
        self,
        next_fun: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: nn.module.InterceptorContext,
    ) -> Any:
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__" or module.scope is None or not module.path:
            return out
        count = _count(out)
        if count is not None:
            name = SEP.join(module.path)
            if name not in self.order:
                self.order.append(name)
            module.sow(COLLECTION, _SOWN, count)
        return out

    def present(self, sown: Mapping[str, Any]) -> list[str]:
        """The recorded modules whose count reached ``sown`` (the collection), in order."""
        return [name for name in self.order if _sown_at(sown, name) is not None]

    def vector(self, sown: Mapping[str, Any]) -> jax.Array:
        """The count of each of :meth:`present`'s modules (summed over repeated calls)."""
        values = [sum(_sown_at(sown, name)) for name in self.present(sown)]
        return jnp.stack(values) if values else jnp.zeros((0,), jnp.int32)


def _sown_at(sown: Mapping[str, Any], name: str) -> Any:
    node = get_path(sown, name)
    return node.get(_SOWN) if isinstance(node, Mapping) else None


def watched_apply(
    counter: LayerCounter | None,
    model: nn.Module,
    variables: Mapping[str, Any],
    *args: Any,
    mutable: list[str],
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """``model.apply(variables, *args, mutable=mutable, **kwargs)``; with a ``counter``,
    under it, the layer counts returned in ``updates[COLLECTION]``."""
    if counter is None:
        return model.apply(variables, *args, mutable=mutable, **kwargs)
    with nn.intercept_methods(counter):
        out, updates = model.apply(variables, *args, mutable=[*mutable, COLLECTION], **kwargs)
    updates = dict(updates)
    updates.setdefault(COLLECTION, {})
    return out, updates


def _first_example(batch: Mapping[str, Any], fields: tuple[str, ...], axis: str | None) -> Any:
    """Position in the (global) batch of the first example with a non-finite float input."""
    if not fields:
        return jnp.asarray(-1, jnp.int32)
    size = jnp.shape(batch[fields[0]])[0]
    bad = jnp.zeros((size,), bool)
    for k in fields:
        value = batch[k]
        bad = bad | ~jnp.all(jnp.isfinite(value.reshape(size, -1)), axis=1)
    position = jnp.where(bad, jnp.arange(size, dtype=jnp.int32), _NO_EXAMPLE)
    if axis is not None:  # this device's slice of the batch comes after the earlier ones'
        position = jnp.where(bad, position + jax.lax.axis_index(axis) * size, _NO_EXAMPLE)
    first = jnp.min(position)
    if axis is not None:
        first = jax.lax.pmin(first, axis)
    return jnp.where(first == _NO_EXAMPLE, -1, first).astype(jnp.int32)


def debug_metrics(
    *,
    batch: Mapping[str, Any],
    total_loss: jax.Array,
    grads: Any,
    variables: Mapping[str, Any],
    counter: LayerCounter,
    sown: Mapping[str, Any],
    axis_name: str | None,
    labels: jax.Array | None = None,
    outputs: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """The ``"debug/..."`` metrics of one step (see the module docstring), reduced over
    ``axis_name`` so every device holds the global answer."""
    fields = float_fields(batch)
    per_device = {
        "inputs": _counts([batch[k] for k in fields]),
        "layers": counter.vector(sown),
    }
    shared = {  # the same on every device, up to BatchNorm statistics that are not synced
        "loss": _counts([total_loss])[0],
        "grads": _counts(jax.tree_util.tree_leaves(grads)),
        "variables": _counts(jax.tree_util.tree_leaves(variables)),
    }
    if axis_name is not None:
        per_device = jax.lax.psum(per_device, axis_name)
        shared = jax.lax.pmax(shared, axis_name)
    out = {**per_device, **shared, "first_example": _first_example(batch, fields, axis_name)}
    if labels is not None and outputs is not None:
        out["labels"] = _labels_outside(labels, outputs, axis_name)
    return {DEBUG_PREFIX + k: v for k, v in out.items()}


def _labels_outside(labels: jax.Array, outputs: jax.Array, axis: str | None) -> jax.Array:
    """``[count, lowest, highest, num_outputs]`` of the integer class labels outside
    ``[0, num_outputs)`` (``"debug/labels"``; all zeros where the targets are not class
    indices of the outputs' last axis)."""
    width = outputs.shape[-1] if outputs.ndim else 0
    is_index = jnp.issubdtype(labels.dtype, jnp.integer) and labels.ndim == outputs.ndim - 1
    if not is_index or width < 2:
        return jnp.zeros((4,), jnp.int32)
    y = labels.astype(jnp.int32)
    count = jnp.sum((y < 0) | (y >= width)).astype(jnp.int32)
    lo, hi = jnp.min(y), jnp.max(y)
    if axis is not None:
        count = jax.lax.psum(count, axis)
        lo, hi = jax.lax.pmin(lo, axis), jax.lax.pmax(hi, axis)
    return jnp.stack([count, lo, hi, jnp.int32(width)])


@dataclasses.dataclass(frozen=True)
class DebugLayout:
    """What each entry of a debug step's vectors counts, for a model and its batches.

    Attributes:
        inputs: the batch's floating-point fields (``"debug/inputs"``).
        layers: module paths in forward order (``"debug/layers"``).
        grads: parameter paths, ``"params/Dense_0/kernel"`` (``"debug/grads"``).
        variables: variable paths, parameters then BatchNorm statistics
            (``"debug/variables"``).
    """

    inputs: tuple[str, ...]
    layers: tuple[str, ...]
    grads: tuple[str, ...]
    variables: tuple[str, ...]

    @classmethod
    def of(cls, model: nn.Module, state: Any, batch: Mapping[str, Any]) -> DebugLayout:
        """The layout of ``train_step(state, batch, debug=True)`` (traced abstractly: nothing
        is computed; ``batch`` may be a batch of one)."""
        counter = LayerCounter()
        variables = dict(state.variables)
        mutable = ["batch_stats"] if state.batch_stats else []

        def run(v: Any, b: Any) -> Any:
            rngs = {"dropout": jax.random.key(0)}
            x, extras = model_input(b), model_kwargs(model, b)
            out = watched_apply(counter, model, v, x, **extras, train=True, rngs=rngs,
                                mutable=mutable)  # fmt: skip
            return out[1][COLLECTION]

        sown = jax.eval_shape(run, variables, dict(batch))
        trees = {"params": state.params, "batch_stats": state.batch_stats}
        return cls(
            inputs=float_fields(batch),
            layers=tuple(counter.present(sown)),
            grads=tuple("params" + SEP + p for p in leaf_paths(state.params)),
            variables=tuple(leaf_paths(trees)),
        )


def non_finite_leaves(tree: Any) -> dict[str, int]:
    """``{path: number of NaN/inf values}`` for each floating-point leaf of ``tree`` (read
    on the host) that holds any, in the tree's order; paths as :func:`jdl._core.tree.leaf_paths`."""
    out = {}
    for path, leaf in leaf_paths(tree).items():
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            bad = _count_non_finite_global(leaf)  # sharded over processes: counted on them
        else:
            value = np.asarray(leaf)
            if not np.issubdtype(value.dtype, np.inexact):
                continue
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            out[path] = bad
    return out


def _count_non_finite_global(leaf: jax.Array) -> int:
    """NaN/inf count of a global array spanning several processes (e.g. an FSDP-sharded
    parameter), computed where its shards live; every process gets the same count."""
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
        return 0
    count = jax.jit(lambda a: jnp.sum(~jnp.isfinite(a)))(leaf)
    return int(count.addressable_data(0))


def describe_non_finite(state: Any) -> str:
    """A phrase naming a state's first non-finite parameter (or BatchNorm statistic), e.g.
    ``"first non-finite parameter: params/Dense_0/kernel (48 of 48 values; 4 of 4 arrays
    non-finite)"``, or ``"every parameter is finite"``."""
    trees = {"params": state.params, "batch_stats": state.batch_stats}
    bad = non_finite_leaves(trees)
    if not bad:
        return "every parameter is finite"
    total = len(leaf_paths(trees))
    path, count = next(iter(bad.items()))
    size = int(np.size(get_path(trees, path)))
    return (
        f"first non-finite parameter: {path} ({count} of {size} values; {len(bad)} of "
        f"{total} arrays non-finite)"
    )
