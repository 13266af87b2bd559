"""Refuse BatchNorm layers that ``pmap`` would leave unsynchronised.

Under ``jax.pmap`` a ``flax.linen.BatchNorm`` averages its statistics over the devices
only when its ``axis_name`` is the mapped axis. jdl's models get it from their
``bn_axis_name`` field (:func:`jdl.train.bind_axis_name`); a user's own layer without it
would normalise each device's slice alone and keep per-device running statistics, and
``unreplicate`` would return replica 0's -- results unlike ``jit``'s and ``"sharded"``'s,
with nothing said. :func:`check_pmap_batch_norm` finds such layers before the first
training step compiles, by tracing the model abstractly (no computation) and looking at
every BatchNorm it calls.

It raises rather than warns: the run would be silently wrong, a warning is easily lost in
a log, and the fix is one keyword (or the ``"sharded"`` strategy).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jdl.train.state import model_input, model_kwargs
from jdl.train.step import bind_axis_name


def unsynchronised_batch_norms(
    model: nn.Module, variables: Any, batch: Any, axis_name: str
) -> list[str]:
    """The paths of the BatchNorm layers of ``model`` (as the steps bind it to
    ``axis_name``) whose statistics would not be averaged over ``axis_name``.

    ``variables`` and ``batch`` may be arrays or shapes; only one example of ``batch``
    is traced, in inference mode, so nothing collective is needed.
    """
    model = bind_axis_name(model, axis_name)
    found: list[str] = []

    def look(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        module = context.module
        if context.method_name == "__call__" and isinstance(module, nn.BatchNorm):
            if module.axis_name != axis_name:
                path = "/".join(module.path)
                if path not in found:
                    found.append(path)
        return next_fun(*args, **kwargs)

    one = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((1, *np.shape(a)[1:]), a.dtype), batch
    )

    def apply(variables: Any, one: Any) -> Any:
        return model.apply(variables, model_input(one), **model_kwargs(model, one), train=False)

    with nn.intercept_methods(look):
        jax.eval_shape(apply, variables, one)
    return found


def check_pmap_batch_norm(state: Any, batch: Any, axis_name: str, replicated: bool) -> None:
    """Raise unless every BatchNorm layer of ``state.model`` is synchronised over
    ``axis_name``; states without a model or without ``batch_stats`` pass unchecked.

    Args:
        state: the training state handed to a ``"pmap"`` step.
        batch: a host batch of it (only its shapes are used).
        axis_name: the pmap axis.
        replicated: whether ``state``'s leaves carry the leading device axis.

    Raises:
        ValueError: naming each unsynchronised layer's path and the two fixes.
    """
    model = getattr(state, "model", None)
    if not isinstance(model, nn.Module) or not jax.tree_util.tree_leaves(
        getattr(state, "batch_stats", None)
    ):
        return
    variables = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a)[1 if replicated else 0 :], a.dtype),
        state.variables,
    )
    paths = unsynchronised_batch_norms(model, variables, batch, axis_name)
    if paths:
        raise ValueError(
            f"The 'pmap' strategy would keep per-device BatchNorm statistics in "
            f"{type(model).__name__} at {', '.join(paths)}: axis_name is not {axis_name!r}, "
            f"so each device would normalise its own slice and the state would hold replica "
            f"0's statistics, unlike 'jit'. Give those layers axis_name={axis_name!r} (or a "
            f"model field bn_axis_name passed on as their axis_name: jdl sets it under pmap), "
            f'or use the "sharded" strategy, where statistics are those of the global batch.'
        )
