"""The training state: everything a training step reads and writes, as one pytree."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jdl._core.memo import is_hashable
from jdl._core.tree import compare_shapes, flatten

__all__ = [
    "MODEL_INPUTS",
    "TrainState",
    "create_state",
    "model_input",
    "model_kwargs",
    "state_from_variables",
]

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
    def arrays(self) -> dict[str, PyTree]:
        """The array fields by name (``step``, ``params``, ``batch_stats``, ``opt_state``,
        ``rng``): what a checkpoint saves and :func:`jdl.train.sweep` stacks.
        ``TrainState(**state.arrays, model=state.model, tx=state.tx)`` rebuilds the state."""
        return {name: getattr(self, name) for name in _ARRAY_FIELDS}

    @property
    def variables(self) -> dict[str, PyTree]:
        """The model variables, ``{"params": ...}`` plus ``"batch_stats"`` where present."""
        out = {"params": self.params}
        if self.batch_stats:
            out["batch_stats"] = self.batch_stats
        return out

    def apply_gradients(self, grads: PyTree, **changes: PyTree) -> TrainState:
        """One optimiser update: returns a new state with ``step + 1``.

        Args:
            grads: gradients with the structure of ``params``.
            **changes: other fields to replace at the same time (e.g. ``batch_stats``).
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


_ARRAY_FIELDS = tuple(
    f.name for f in dataclasses.fields(TrainState) if f.metadata.get("pytree_node", True)
)


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


#: Batch entries besides ``"x"`` that reach a model whose ``__call__`` takes them.
MODEL_INPUTS = ("lengths",)


def model_kwargs(model: nn.Module, batch: Any) -> dict[str, Any]:
    """The keyword inputs a batch carries for its model, e.g. ``{"lengths": ...}``.

    A dict batch's ``"lengths"`` (valid lengths of padded sequences, shape ``(batch,)``) is
    passed to models whose ``__call__`` takes ``lengths`` (:class:`jdl.nn.RNNClassifier`),
    so padding is never read.

    Raises:
        ValueError: if the batch carries ``"lengths"`` but the model takes none -- it would
            read the padding as data.
    """
    if not isinstance(batch, Mapping):
        return {}
    out = {}
    for name in MODEL_INPUTS:
        if name not in batch:
            continue
        if name not in inspect.signature(type(model).__call__).parameters:
            raise ValueError(
                f"The batch carries {name!r} (padded sequences), but {type(model).__name__}"
                f"'s __call__ takes no `{name}` argument, so it would read the padding as "
                f"data: use a model that takes `{name}` (e.g. jdl.nn.RNNClassifier) or drop "
                f"the {name!r} entry."
            )
        out[name] = batch[name]
    return out


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3) or "
            f"jdl.train.optimizer('adam', 1e-3)); got {type(optimizer).__name__}."
        )


def _keys(seed: int | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The (init, dropout, state) keys of a seed: raw ``uint32[2]`` keys."""
    key = seed if isinstance(seed, jax.Array) else jax.random.PRNGKey(seed)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    init_key, dropout_key, state_key = jax.random.split(key, 3)
    return init_key, dropout_key, state_key


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
        sample_batch: a batch (dict with ``"x"``) or an input array, with its leading
            batch axis; only its shape and dtype matter. A batch of one example is
            enough (``x[:1]``), but not a single example without the batch axis
            (``source[0]``): the model rejects that shape.
        seed: an integer seed or a PRNG key. The same seed gives bitwise-identical
            parameters and dropout masks.

    Returns:
        The initial state, with ``step == 0``.

    Raises:
        TypeError: if ``optimizer`` is not an optax transformation.
    """
    _check_optimizer(optimizer)
    init_key, dropout_key, _ = _keys(seed)
    x = jnp.asarray(model_input(sample_batch))
    if is_hashable(model):  # one compilation per (model, input shape), reused by every call
        variables = _compiled_init(model, init_key, dropout_key, x)
    else:  # a module with an unhashable field (a list): compiled for this call only
        variables = jax.jit(functools.partial(_init, model))(init_key, dropout_key, x)
    return state_from_variables(model, optimizer, variables, seed, copy=False)


def _init(model: nn.Module, init_key: jax.Array, dropout_key: jax.Array, x: jax.Array) -> Any:
    return model.init({"params": init_key, "dropout": dropout_key}, x, train=False)


#: ``model.init`` compiled once per model and input shape (the model is a static argument:
#: flax modules are frozen dataclasses, equal when their fields are).
_compiled_init = jax.jit(_init, static_argnums=0)


#: The optimiser of a state that is only evaluated: one object, so that the states
#: ``evaluate`` builds have the same static fields and reuse its compiled step.
_NO_OPTIMIZER = optax.identity()


def state_from_variables(
    model: nn.Module,
    optimizer: optax.GradientTransformation | None,
    variables: Mapping[str, Any] | Any,
    seed: int | jax.Array = 0,
    *,
    copy: bool = True,
) -> TrainState:
    """A :class:`TrainState` that starts from given variables instead of a fresh init.

    For pretrained weights, another run's ``History.variables``, or evaluating trained
    variables. The state has ``step == 0``, a fresh optimiser state
    (``optimizer.init(params)``) and the random key :func:`create_state` would give for
    ``seed``, so ``state_from_variables(model, tx, create_state(model, tx, x, s).variables,
    s)`` equals ``create_state(model, tx, x, s)``. Nothing is checked against the model:
    compare shapes first where the variables come from elsewhere.

    Args:
        model: the ``flax.linen`` module the variables belong to.
        optimizer: an ``optax.GradientTransformation``, or ``None`` for a state that is
            only evaluated (``optax.identity()``).
        variables: ``{"params": ..., "batch_stats": ...}`` (``"batch_stats"`` only for
            models with BatchNorm), or a :class:`TrainState` / ``History`` (their
            ``.variables``).
        seed: an integer seed or a PRNG key, for the dropout key.
        copy: copy the arrays (default), so ``variables`` stays valid after jdl's compiled
            steps, which donate the state's buffers. ``False`` shares them.

    Returns:
        The state.

    Raises:
        TypeError: if ``variables`` has no ``"params"``, or ``optimizer`` is not an optax
            transformation.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from jdl.nn import MLP
        >>> model = MLP(widths=(8,), num_outputs=2)
        >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)), train=False)
        >>> state = state_from_variables(model, optax.sgd(0.1), variables)
        >>> int(state.step), state.params["head"]["kernel"].shape
        (0, (8, 2))
    """
    variables = _as_variables(variables)
    tx = _NO_OPTIMIZER if optimizer is None else optimizer
    _check_optimizer(tx)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    if copy:
        params, batch_stats = jax.tree.map(lambda a: jnp.array(a, copy=True), (params, batch_stats))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        rng=_keys(seed)[2],
        model=model,
        tx=tx,
    )


def check_variables(
    expected: Mapping[str, PyTree], given: Mapping[str, PyTree], what: str
) -> dict[str, PyTree]:
    """``given``'s ``"params"`` and ``"batch_stats"``, checked against a model's own.

    The one check of variables handed to jdl for a model (``fit(variables=...)``,
    :func:`jdl.evaluate`): the same paths with the same shapes, or an error listing every
    difference at once, instead of flax's first ``ScopeParamShapeError`` from inside a
    compiled step.

    Args:
        expected: the model's variables (``{"params": ..., "batch_stats": ...}``), concrete
            or abstract (``jax.eval_shape`` of ``model.init``: only the shapes are read).
        given: the variables handed over, a mapping with ``"params"``.
        what: how the caller names them in the message (``"fit variables="``).

    Returns:
        ``{"params": ..., "batch_stats": ...}`` of ``given`` (``{}`` for missing statistics).

    Raises:
        ValueError: naming each missing and unexpected path with its shape, and each
            path whose shape differs (the shape given and the model's).
    """
    expected = {"params": expected["params"], "batch_stats": expected.get("batch_stats", {})}
    given = {"params": given["params"], "batch_stats": given.get("batch_stats", {})}
    want = {k: np.shape(v) for k, v in flatten(expected).items()}
    got = {k: np.shape(v) for k, v in flatten(given).items()}
    missing, unexpected, mismatched = compare_shapes(want, got)
    problems = [f"missing {k} {want[k]}" for k in missing]
    problems += [f"unexpected {k} {got[k]}" for k in unexpected]
    problems += [f"{k}: shape {got} given, the model has {shape}" for k, shape, got in mismatched]
    if problems:
        raise ValueError(
            f"{what} do not fit the model ({len(problems)} problem(s)): "
            + "; ".join(problems)
            + ". Pass the variables of this model (same architecture and num_outputs), e.g. "
            "the History.variables of a fit of it."
        )
    return given


def _as_variables(variables: Mapping[str, PyTree] | Any) -> dict[str, PyTree]:
    """The variables dict of ``variables``: a ``{"params": ...}`` mapping, or a
    :class:`TrainState` / ``History`` (their ``.variables``).

    Raises:
        TypeError: if there is no ``"params"`` entry.
    """
    if hasattr(variables, "variables") and not isinstance(variables, Mapping):
        variables = variables.variables
    if not isinstance(variables, Mapping) or "params" not in variables:
        found = sorted(variables) if isinstance(variables, Mapping) else type(variables).__name__
        raise TypeError(
            'variables must be a mapping with a "params" entry (and "batch_stats" for models '
            f"with BatchNorm), e.g. model.init(...) or history.variables; got {found}."
        )
    return dict(variables)
