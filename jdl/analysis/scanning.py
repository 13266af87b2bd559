"""``scan_fit``: a whole small training run as one compiled ``lax.scan`` (no host syncs).

For the experiments of the analysis tutorials and tests -- a few hundred or thousand steps
on a dataset that fits in memory -- the per-step Python overhead of a loop dominates. Here
the data live on the device, every step draws its minibatch with ``jax.random``, and
``lax.scan`` runs :func:`jdl.train.train_step` ``steps`` times inside one compiled program;
the per-step losses come back once, at the end. For real training use :func:`jdl.fit`.
(On XLA:CPU convolutions inside a loop are slow: prefer ``jdl.fit`` for CNNs there.)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl import metrics as metrics_lib
from jdl.analysis._layers import apply_model
from jdl.data import ArraySource, as_source
from jdl.data import as_arrays as source_arrays
from jdl.train import TrainState, as_optimizer, create_state, state_from_variables, train_step
from jdl.train.data_checks import check_arrays_against
from jdl.train.state import MODEL_INPUTS

__all__ = ["ScanRun", "scan_fit"]


@dataclasses.dataclass
class ScanRun:
    """Result of :func:`scan_fit`.

    Attributes:
      losses: training loss of every step (numpy, length ``steps``).
      state: the final :class:`jdl.train.TrainState`.
      metrics: the requested metrics (and ``"loss"``) of the final model on the whole
        training set, in evaluation mode.
    """

    losses: np.ndarray
    state: TrainState
    metrics: dict[str, float]

    @property
    def variables(self) -> dict:
        """The final variables (``{"params": ...}`` plus ``"batch_stats"``)."""
        return self.state.variables


def _as_arrays(data: Any) -> dict[str, np.ndarray]:
    """``{"x", "y"}`` -- plus the model inputs a batch may carry (``"lengths"``) -- from a
    dict of arrays, an ``(x, y)`` pair or a random-access source."""
    if isinstance(data, Mapping):
        if "x" not in data or "y" not in data:
            raise KeyError(f'data must have "x" and "y"; found {sorted(data)}.')
        arrays = data
    else:
        source = as_source(data, "data")  # an (x, y) pair: checked by jdl.data.from_arrays
        arrays = source.arrays if isinstance(source, ArraySource) else source_arrays(source)
    return {k: np.asarray(arrays[k]) for k in ("x", "y", *MODEL_INPUTS) if k in arrays}


def checked_arrays(model: nn.Module, data: Any, loss: str | Callable) -> dict[str, np.ndarray]:
    """:func:`_as_arrays`, checked as :func:`jdl.fit` checks its data, every example:
    numbers only, finite, and targets that fit the model's outputs and the loss (class
    labels in ``[0, num_outputs)``, ...; see :mod:`jdl.train.data_checks`)."""
    arrays = _as_arrays(data)
    check_arrays_against(model, arrays, loss, "data", True)
    return arrays


def sample_batch(key: jax.Array, arrays: Mapping[str, jax.Array], batch_size: int | None) -> dict:
    """A random minibatch of every array (without replacement), or for ``None``/``>= n`` all."""
    n = arrays["x"].shape[0]
    if batch_size is None or batch_size >= n:
        return dict(arrays)
    idx = jax.random.permutation(key, n)[:batch_size]
    return {k: v[idx] for k, v in arrays.items()}


def scan_fit(
    model: nn.Module,
    data: Any,
    loss: str | Callable,
    *,
    optimizer: optax.GradientTransformation | tuple[str, float],
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    variables: Any = None,
    metrics: Sequence[str] = ("accuracy",),
) -> ScanRun:
    """Train ``model`` for ``steps`` steps in one compiled ``lax.scan``.

    Args:
      model: any ``flax.linen`` module taking ``(x, *, train)``.
      data: ``{"x": ..., "y": ...}`` arrays (plus ``"lengths"`` for a model that takes
        them), an ``(x, y)`` pair, or a data source.
      loss: a jdl loss name or function.
      optimizer: an optax transformation or a ``(name, learning_rate)`` pair (see
        :func:`jdl.train.as_optimizer`).
      steps: number of optimiser steps.
      batch_size: minibatch size drawn afresh each step; ``None`` = full batch.
      seed: initialisation, dropout and sampling seed.
      variables: start from these variables instead of a fresh initialisation.
      metrics: metric names evaluated on the whole training set at the end.

    Returns:
      A :class:`ScanRun`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jdl.nn import MLP
      >>> data = {"x": jnp.eye(4), "y": jnp.arange(4)}
      >>> run = scan_fit(MLP(widths=(16,), num_outputs=4), data, "cross_entropy",
      ...                optimizer=optax.adam(0.05), steps=100)
      >>> run.metrics["accuracy"]
      1.0
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    arrays = {k: jnp.asarray(v) for k, v in checked_arrays(model, data, loss).items()}
    x, y = arrays["x"], arrays["y"]
    extras = {k: v for k, v in arrays.items() if k not in ("x", "y")}
    state = initial_state(model, as_optimizer(optimizer), x, seed, variables)
    state, losses = _run(state, arrays, loss, steps, batch_size, seed)
    return ScanRun(
        np.asarray(losses), state, evaluate_arrays(state, x, y, loss, metrics, extras=extras)
    )


def initial_state(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    x: jax.Array,
    seed: int,
    variables: Any = None,
) -> TrainState:
    """A fresh state from ``seed`` on inputs like ``x``, or one from ``variables`` if given."""
    if variables is None:
        return create_state(model, optimizer, x[:1], seed)
    return state_from_variables(model, optimizer, variables, seed, copy=False)


@functools.partial(jax.jit, static_argnames=("loss", "steps", "batch_size"))
def _run(
    state: TrainState,
    arrays: dict[str, jax.Array],
    loss: str | Callable,
    steps: int,
    batch_size: int | None,
    seed: int,
) -> tuple[TrainState, jax.Array]:
    key = jax.random.key(seed + 1)

    def body(st: TrainState, i: jax.Array) -> tuple[TrainState, jax.Array]:
        batch = sample_batch(jax.random.fold_in(key, i), arrays, batch_size)
        st, m = train_step(st, batch, loss_fn=loss)
        return st, m["loss"]

    return jax.lax.scan(body, state, jnp.arange(steps))


def evaluate_arrays(
    state: TrainState,
    x: jax.Array,
    y: jax.Array,
    loss: str | Callable,
    metrics: Sequence[str] = ("accuracy",),
    *,
    extras: Mapping[str, jax.Array] | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``state`` on arrays, evaluation mode, one compiled call.

    ``extras`` are the other model inputs of the batch (``{"lengths": ...}``).
    """
    from jdl import losses as losses_lib

    @jax.jit
    def run(v: dict[str, Any]) -> dict[str, jax.Array]:
        out, _ = apply_model(state.model, v, x, train=False, extras=extras)
        res = {"loss": losses_lib.get(loss)(out, y)}
        for name in metrics:
            res[name] = metrics_lib.get(name)(out, y)
        return res

    return {k: float(v) for k, v in jax.device_get(run(state.variables)).items()}
