"""Turn a step ``(state, batch) -> (state, metrics)`` into a compiled, data-parallel one.

Three strategies, one interface (:func:`parallelize`):

``"jit"``
    ``jax.jit`` on one device, the state donated (its buffers are reused for the new
    state, so the state passed in must not be used again).
``"sharded"``
    ``jax.jit`` with a ``NamedSharding`` over a one-dimensional ``"data"`` mesh of all
    devices (of all processes): each batch is split along its first axis, the state is
    replicated, and XLA inserts the gradient all-reduce. Under ``jit`` BatchNorm statistics
    are computed over the global batch with no ``axis_name``. Works across hosts after
    ``jax.distributed.initialize``: each process feeds its own slice of every global batch
    (as :func:`jdl.data.batches` yields it). The default when several devices are present.
``"pmap"``
    classic ``jax.pmap`` over the local devices with ``axis_name="batch"``: the step is
    called with ``axis_name="batch"``, so gradients and metrics are averaged with
    ``lax.pmean`` and jdl models synchronise their BatchNorm statistics. The state carries a
    leading device axis.
``"fsdp"``
    ``jax.jit`` over a 2-D ``("data", "fsdp")`` mesh (:func:`jdl.train.fsdp_mesh`; default
    every device on ``"fsdp"``): batches are split over both axes, each large parameter
    and its optimiser-state leaves are sharded along one axis over ``"fsdp"``, small ones
    replicated (:mod:`jdl.train.sharding`; user rules with ``rules=``). Each device holds
    only its slice of the state, and the step keeps every array where it was.

After the same global batches all four give the same outputs, losses and parameters to
float tolerance, BatchNorm and jdl's dropout included (under ``"pmap"`` each device draws
its rows of jit's masks, see :func:`jdl.train.train_step`). A model's own
``flax.linen.Dropout`` draws other masks under ``"pmap"`` (its key folds in the device
index), and a bias right before BatchNorm, which gets only rounding noise as gradient,
drifts differently under Adam. The measured table: docs/howto/multi_device.rst, "What is
equal across strategies".
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jdl._core.memo import BoundedCache, is_hashable
from jdl.train.sharding import FSDP_MIN_SIZE, _check_divides, _Fsdp, _local_value

__all__ = ["STRATEGIES", "ParallelStep", "data_mesh", "default_strategy", "parallelize"]

STRATEGIES = ("jit", "sharded", "pmap", "fsdp")
"""The strategy names :func:`parallelize` accepts."""

PMAP_AXIS = "batch"


def default_strategy() -> str:
    """``"sharded"`` when more than one device is visible (in all processes), else ``"jit"``."""
    return "sharded" if jax.device_count() > 1 else "jit"


def data_mesh(devices: Any = None) -> jax.sharding.Mesh:
    """A one-dimensional mesh named ``"data"`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.sharding.Mesh(np.array(devices), ("data",))


def _first_replica(x: Any) -> Any:
    """Replica 0 of an array with a leading device axis (a pmapped state's leaf)."""
    if isinstance(x, jax.Array):
        return jnp.reshape(x.addressable_shards[0].data, np.shape(x)[1:])
    return x[0]


def _replicate_from_host(x: Any, sharding: NamedSharding) -> jax.Array:
    """A global array replicated on ``sharding``'s devices, from this process's copy."""
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _returns_state(step: Callable) -> bool:
    """Whether ``step`` returns a new state: ``False`` for steps marked as evaluation steps.

    A step marks itself with a function attribute ``updates_state = False``
    (:func:`jdl.train.eval_step` does); ``functools.partial`` wrappers are looked through.
    """
    fn = step
    while isinstance(fn, functools.partial):
        fn = fn.func
    return bool(getattr(fn, "updates_state", True))


class _Jit:
    """One device: ``jax.jit``; states and batches are used as they are."""

    name = "jit"
    mesh: jax.sharding.Mesh | None = None

    def compile(
        self, fn: Callable[..., Any], donate_argnums: tuple[int, ...], returns_state: bool
    ) -> Callable[..., Any]:
        """The compiled ``fn(state, batch)``."""
        return jax.jit(fn, donate_argnums=donate_argnums)

    def put_state(self, state: Any) -> Any:
        """``state`` placed as the compiled step expects it."""
        return state

    def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """This process's host batch placed as the compiled step expects it."""
        return batch

    def unreplicate(self, tree: Any) -> Any:
        """A plain tree this process can read, from one the compiled step returned."""
        return tree

    def batch_multiple(self) -> int:
        """What every global batch size must be a multiple of: each process reads its
        equal part of every global batch."""
        return jax.process_count()

    def check_training(self, state: Any, batch: dict[str, Any]) -> None:
        """Raise if training ``state`` on ``batch`` this way would be silently wrong."""


class _Sharded(_Jit):
    """``jax.jit`` over a 1-D ``"data"`` mesh: batches split, states replicated."""

    name = "sharded"

    def __init__(self, mesh: jax.sharding.Mesh | None):
        self.mesh = mesh if mesh is not None else data_mesh()
        if self.mesh.axis_names != ("data",):
            raise ValueError(
                f'The "sharded" strategy needs a 1-D mesh with axis "data"; got axes '
                f"{self.mesh.axis_names}."
            )
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec("data"))

    def compile(
        self, fn: Callable[..., Any], donate_argnums: tuple[int, ...], returns_state: bool
    ) -> Callable[..., Any]:
        out = (self.replicated, self.replicated) if returns_state else self.replicated
        return jax.jit(
            fn,
            in_shardings=(self.replicated, self.batch_sharding),
            out_shardings=out,
            donate_argnums=donate_argnums,
        )

    def put_state(self, state: Any) -> Any:
        leaves = jax.tree_util.tree_leaves(state)
        if all(getattr(x, "sharding", None) == self.replicated for x in leaves):
            return state
        if jax.process_count() == 1:
            return jax.device_put(state, self.replicated)
        # Across processes a committed array cannot be moved to another host's devices:
        # every process builds the replicated array from its own copy.
        return jax.tree_util.tree_map(
            lambda x: _replicate_from_host(_local_value(x), self.replicated), state
        )

    def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        _check_divides(self.name, batch)
        if jax.process_count() == 1:
            return batch  # jit's in_shardings split a host array
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)),
            batch,
        )

    def unreplicate(self, tree: Any) -> Any:
        if jax.process_count() > 1:
            return jax.tree_util.tree_map(_local_value, tree)
        return tree

    def batch_multiple(self) -> int:
        # every process's part splits over its local devices, and the whole over the mesh
        return math.lcm(jax.device_count(), self.mesh.size)


class _Pmap(_Jit):
    """``jax.pmap`` over the local devices: every leaf carries a leading device axis."""

    name = "pmap"

    def compile(
        self, fn: Callable[..., Any], donate_argnums: tuple[int, ...], returns_state: bool
    ) -> Callable[..., Any]:
        return jax.pmap(
            functools.partial(fn, axis_name=PMAP_AXIS),
            axis_name=PMAP_AXIS,
            donate_argnums=donate_argnums,
        )

    def put_state(self, state: Any) -> Any:
        if np.ndim(state.step) == 1:
            return state  # already replicated
        devices = jax.local_devices()
        sharding = NamedSharding(
            jax.sharding.Mesh(np.array(devices), (PMAP_AXIS,)), PartitionSpec(PMAP_AXIS)
        )
        return jax.tree_util.tree_map(
            lambda x: jax.device_put(jnp.broadcast_to(x, (len(devices), *jnp.shape(x))), sharding),
            state,
        )

    def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        _check_divides(self.name, batch)
        n_local = jax.local_device_count()
        return jax.tree_util.tree_map(
            lambda x: np.reshape(x, (n_local, -1, *np.shape(x)[1:])), batch
        )

    def unreplicate(self, tree: Any) -> Any:
        if hasattr(tree, "step") and np.ndim(tree.step) == 0:
            return tree  # a plain state
        return jax.tree_util.tree_map(_first_replica, tree)

    def batch_multiple(self) -> int:
        return jax.device_count()  # every process's part splits over its local devices

    _checked_model: Any = None

    def check_training(self, state: Any, batch: dict[str, Any]) -> None:
        model = getattr(state, "model", None)
        if model is None or model is self._checked_model:
            return  # once per model (the state's model object is kept from step to step)
        from jdl.train._pmap_batchnorm import check_pmap_batch_norm

        check_pmap_batch_norm(state, batch, PMAP_AXIS, replicated=np.ndim(state.step) == 1)
        self._checked_model = model


def _strategy(name: str, mesh: Any, rules: Any = (), min_size: int = 0) -> _Jit:
    if name == "sharded":
        return _Sharded(mesh)
    if name == "fsdp":
        return _Fsdp(mesh, rules, min_size)
    return _Pmap() if name == "pmap" else _Jit()


#: The compiled steps of earlier :func:`parallelize` calls, by what they compile (the step,
#: strategy, mesh, donation): a second ``fit`` or ``evaluate`` with the same loss, metrics
#: and settings reuses the jitted function, and so its compilations for the same shapes.
_COMPILED = BoundedCache(64)


def _step_key(step: Any) -> Any:
    """What identifies a step: the function, or a ``functools.partial``'s function and
    arguments (recursively); it must be hashable."""
    if isinstance(step, functools.partial):
        keywords = tuple(sorted((k, _step_key(v)) for k, v in step.keywords.items()))
        return ("partial", _step_key(step.func), tuple(map(_step_key, step.args)), keywords)
    return step


def _cache_key(
    step: Any, strategy: str, mesh: Any, donate: tuple, updates: bool, layout: Any = ()
) -> Any:
    """The :data:`_COMPILED` key of a step, or ``None`` where a part is not hashable."""
    key = (_step_key(step), strategy, mesh, donate, updates, layout)
    return key if is_hashable(key) else None


class ParallelStep:
    """A compiled data-parallel step; create it with :func:`parallelize`.

    Call it like the step it wraps: ``state, metrics = pstep(state, batch)``. Batches are
    host (numpy) dicts holding this process's examples; the state may be a plain state
    from :func:`jdl.train.create_state` (it is placed on the devices on first use) or one
    returned by an earlier call. Use :meth:`unreplicate` to get a plain state back (for
    saving or evaluation elsewhere).

    Attributes:
        strategy: ``"jit"``, ``"sharded"``, ``"pmap"`` or ``"fsdp"``.
        mesh: the ``"data"`` mesh for ``"sharded"``, the ``("data", "fsdp")`` mesh for
            ``"fsdp"``, else ``None``.
        rules: the ``"fsdp"`` strategy's user sharding rules (else unused).
        min_size: the ``"fsdp"`` strategy's size threshold (else unused).
        compiled: the underlying jitted/pmapped function (for inspection, e.g. to count
            compilations with ``compiled._cache_size()``).
    """

    def __init__(
        self,
        step: Callable,
        strategy: str,
        *,
        donate: bool,
        updates_state: bool,
        mesh: jax.sharding.Mesh | None,
        rules: Any = (),
        min_size: int | None = None,
    ):
        min_size = FSDP_MIN_SIZE if min_size is None else min_size
        rules = tuple(tuple(r) if isinstance(r, list) else r for r in rules)
        self._strategy = _strategy(strategy, mesh, rules, min_size)
        self.strategy = strategy
        self.mesh = self._strategy.mesh
        self.rules = rules
        self.min_size = min_size
        self.updates_state = updates_state
        donate_argnums = (0,) if (donate and updates_state) else ()
        layout = (rules, min_size) if strategy == "fsdp" else ()
        key = _cache_key(step, strategy, self.mesh, donate_argnums, updates_state, layout)
        compiled = _COMPILED.get(key) if key is not None else None
        if compiled is None:
            fn = step if updates_state else (lambda state, batch, **kw: step(state, batch, **kw)[1])
            compiled = self._strategy.compile(fn, donate_argnums, updates_state)
            if key is not None:
                _COMPILED.put(key, compiled)
        self.compiled = compiled

    def put_state(self, state: Any) -> Any:
        """Place a plain state as this strategy expects (replicated for pmap/sharded,
        sharded by :func:`jdl.train.state_shardings` for fsdp)."""
        return self._strategy.put_state(state)

    def unreplicate(self, state: Any) -> Any:
        """A plain state (no device axis) from a state returned by this step.

        Its arrays live on this process's devices only, so they can be read
        (``np.asarray``), saved or evaluated elsewhere in any process -- except under
        ``"fsdp"``, whose state stays sharded (global arrays, readable as they are in one
        process; saved by :func:`jdl.train.save_state` shard by shard in several).
        """
        return self._strategy.unreplicate(state)

    @property
    def batch_multiple(self) -> int:
        """The number every global batch size must be a multiple of.

        It counts the devices a batch is split over (all devices for ``"sharded"`` and
        ``"pmap"``) or, for ``"jit"``, the processes, which read equal parts of it.
        """
        return self._strategy.batch_multiple()

    def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Place a host batch (this process's examples) on the devices.

        Raises:
            ValueError: if the per-process batch does not divide evenly over the devices.
        """
        return self._strategy.put_batch(batch)

    def __call__(self, state: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """Run the step: ``(state, batch) -> (state, metrics)``.

        Raises:
            ValueError: for a batch that does not divide over the devices, or, under
                ``"pmap"``, a training state whose model has BatchNorm layers whose
                ``axis_name`` is not ``"batch"`` (they would keep per-device statistics;
                the message names them and the fix).
        """
        if self.updates_state:
            self._strategy.check_training(state, batch)
        placed = getattr(self, "_placed", None)
        if placed is None or placed() is not state:  # the state it returned is placed
            state = self.put_state(state)
        out = self.compiled(state, self.put_batch(batch))
        metrics = self._strategy.unreplicate(out[1] if self.updates_state else out)
        new_state = out[0] if self.updates_state else state
        try:  # no per-step placement check (a walk over the state) for the next call
            self._placed = weakref.ref(new_state)
        except TypeError:  # a state that cannot be referred to weakly (a dict): checked
            self._placed = None
        return new_state, metrics


def parallelize(
    step: Callable,
    strategy: str | None = None,
    *,
    donate: bool = True,
    updates_state: bool | None = None,
    mesh: jax.sharding.Mesh | None = None,
    rules: Sequence[tuple[str, PartitionSpec]] = (),
    min_size: int | None = None,
) -> ParallelStep:
    """Compile a step ``(state, batch, *, axis_name=None) -> (state, metrics)`` for devices.

    Args:
        step: the step, usually ``functools.partial(jdl.train.train_step, loss_fn=...)``.
            Under ``"pmap"`` it is called with ``axis_name="batch"``, so it must accept
            that keyword (jdl's steps do) and reduce over it.
        strategy: ``"jit"``, ``"sharded"``, ``"pmap"``, ``"fsdp"``, or ``None`` for
            :func:`default_strategy`.
        donate: donate the input state's buffers (the default for training).
        updates_state: whether the step returns a new state. ``None`` reads the step's
            ``updates_state`` function attribute (``functools.partial`` wrappers are looked
            through; :func:`jdl.train.eval_step` sets it to ``False``); a step that does not update
            the state is compiled to return only its metrics, and the state is passed back
            unchanged without copies.
        mesh: the ``"data"`` mesh for ``"sharded"`` (default: all devices), or the
            ``("data", "fsdp")`` mesh for ``"fsdp"`` (default :func:`jdl.train.fsdp_mesh`:
            all devices on ``"fsdp"``).
        rules: for ``"fsdp"``, ``(regex, PartitionSpec)`` pairs tried first on each state
            leaf's path (see :mod:`jdl.train.sharding`).
        min_size: for ``"fsdp"``, arrays with fewer elements are replicated (default
            :data:`jdl.train.FSDP_MIN_SIZE`).

    Returns:
        A :class:`ParallelStep`.

    Raises:
        ValueError: for an unknown strategy name (lists the valid ones), or a mesh whose
            axes do not fit the strategy.
    """
    if strategy is None:
        strategy = default_strategy()
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}.")
    if updates_state is None:
        updates_state = _returns_state(step)
    return ParallelStep(
        step, strategy, donate=donate, updates_state=updates_state, mesh=mesh, rules=rules,
        min_size=min_size,
    )  # fmt: skip
