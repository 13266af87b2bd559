"""The training state: everything a training step reads and writes, as one pytree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

__all__ = ["TrainState", "create_state", "model_input"]

PyTree = Any


@struct.dataclass
class TrainState:
    """Parameters, BatchNorm statistics, optimiser state, step counter and random key.

    A ``TrainState`` is a pytree: ``jax.jit``, ``jax.pmap``, ``jax.vmap`` and Orbax see
    its array fields (``step``, ``params``, ``batch_stats``, ``opt_state``, ``rng``). The
    model and the optimiser are static fields (part of the tree structure, not leaves),
    so a step function can be written as ``(state, batch) -> (state, metrics)``.

    Attributes:
        step: number of optimiser updates applied so far (an int32 scalar).
        params: the model's trainable parameters (the ``"params"`` collection).
        batch_stats: BatchNorm running statistics (``{}`` for models without BatchNorm).
        opt_state: the optax optimiser state.
        rng: a raw ``uint32[2]`` PRNG key; the dropout key of step ``t`` is
            ``jax.random.fold_in(rng, t)``, so training is reproducible and resumable.
        model: the ``flax.linen`` module (static).
        tx: the ``optax.GradientTransformation`` (static).
    """

    step: jax.Array
    params: PyTree
    batch_stats: PyTree
    opt_state: PyTree
    rng: jax.Array
    model: nn.Module = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @property
    def variables(self) -> dict[str, PyTree]:
        """The model variables: ``{"params": ...}`` plus ``"batch_stats"`` where present."""
        out = {"params": self.params}
        if self.batch_stats:
            out["batch_stats"] = self.batch_stats
        return out

    def apply_gradients(self, grads: PyTree, **changes) -> TrainState:
        """One optimiser update: returns a new state with ``step + 1``.

        Args:
            grads: gradients with the structure of ``params``.
            **changes: other fields to replace at the same time (e.g. ``batch_stats``).
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


def model_input(batch: Any) -> jax.Array:
    """The model input of a batch: ``batch["x"]`` for dict batches, else the batch itself.

    Raises:
        KeyError: for a mapping without an ``"x"`` entry (names the keys found).
    """
    if isinstance(batch, Mapping):
        if "x" not in batch:
            raise KeyError(
                f'A batch must be a dict with "x" (inputs) and "y" (targets); got keys '
                f"{sorted(batch)}."
            )
        return batch["x"]
    return batch


def create_state(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    sample_batch: Any,
    seed: int | jax.Array = 0,
) -> TrainState:
    """Initialise a model and its optimiser into a :class:`TrainState`.

    Args:
        model: a ``flax.linen`` module whose ``__call__`` takes ``(x, *, train)``.
        optimizer: any ``optax.GradientTransformation``.
        sample_batch: a batch (dict with ``"x"``) or an input array; only its shape and
            dtype matter. One example is enough.
        seed: an integer seed or a PRNG key. The same seed gives bitwise-identical
            parameters and dropout masks.

    Returns:
        The initial state, with ``step == 0``.

    Raises:
        TypeError: if ``optimizer`` is not an optax transformation.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3) or "
            f"jdl.train.optimizer('adam', 1e-3)); got {type(optimizer).__name__}."
        )
    key = seed if isinstance(seed, jax.Array) else jax.random.PRNGKey(seed)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    init_key, dropout_key, state_key = jax.random.split(key, 3)
    x = jnp.asarray(model_input(sample_batch))
    variables = jax.jit(lambda k, d: model.init({"params": k, "dropout": d}, x, train=False))(
        init_key, dropout_key
    )
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
        rng=state_key,
        model=model,
        tx=optimizer,
    )
