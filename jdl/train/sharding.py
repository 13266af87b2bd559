"""Where each array of a training state lives on a 2-D ``("data", "fsdp")`` mesh.

Fully sharded data parallelism (FSDP, ZeRO-3): every large parameter, and every
optimiser-state leaf of the same shape, is split along one axis over the ``"fsdp"`` mesh
axis, so each device holds only its slice; small arrays (biases, BatchNorm statistics, the
step counter) are replicated. Batches are split over both mesh axes. XLA gathers a
parameter where the computation needs it whole and reduce-scatters its gradient.

The rule for an array is, in order:

1. the first user rule ``(regex, PartitionSpec)`` whose regex matches the array's path
   (:func:`re.search` on paths such as ``"params/Dense_0/kernel"`` or
   ``"opt_state/inner_state/0/mu/Dense_0/kernel"``, as :func:`jdl._core.tree.leaf_paths`
   names them);
2. else, for an array of at least ``min_size`` elements, its largest axis whose length the
   ``"fsdp"`` axis size divides (the first such, on ties), sharded over ``"fsdp"``;
3. else replicated (``PartitionSpec()``).

Only shapes and paths are read, so the shardings of a state can be computed from
``jax.eval_shape`` (no arrays allocated), e.g. to size a model's per-device memory
(:func:`per_device_bytes`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jdl._core.tree import path_str

__all__ = [
    "FSDP_MIN_SIZE",
    "fsdp_mesh",
    "fsdp_spec",
    "per_device_bytes",
    "shard_state",
    "state_shardings",
]

FSDP_AXES = ("data", "fsdp")
"""The axis names of an FSDP mesh: batches are split over both, parameters over ``"fsdp"``."""

FSDP_MIN_SIZE = 2**14
"""Arrays with fewer elements than this are replicated by the FSDP rule."""

Rules = Sequence[tuple[str, PartitionSpec]]


def fsdp_mesh(shape: Sequence[int] | None = None, devices: Any = None) -> jax.sharding.Mesh:
    """A ``("data", "fsdp")`` mesh built with :func:`jax.make_mesh` (topology-aware).

    Args:
        shape: ``(data, fsdp)`` axis sizes whose product is the number of devices;
            default ``(1, n)``: every device on ``"fsdp"``.
        devices: the devices (default: all devices, of all processes).

    Returns:
        The mesh.

    Raises:
        ValueError: if ``shape`` is not two positive sizes multiplying to the device count.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    shape = (1, n) if shape is None else tuple(shape)
    if len(shape) != 2 or any(int(s) < 1 for s in shape) or math.prod(shape) != n:
        raise ValueError(
            f"Expected a mesh shape (data, fsdp) of two positive sizes multiplying to the "
            f"{n} devices; got {shape}."
        )
    # Auto axes: XLA propagates the shardings (explicit axes would ask every op for one)
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh(tuple(int(s) for s in shape), FSDP_AXES, auto, devices=devices)


def fsdp_spec(shape: Sequence[int], axis_size: int, min_size: int = FSDP_MIN_SIZE) -> PartitionSpec:
    """The FSDP rule's spec for an array of ``shape`` (rule 2, else 3, of the module doc).

    Args:
        shape: the array's shape.
        axis_size: the size of the ``"fsdp"`` mesh axis.
        min_size: arrays with fewer elements are replicated.

    Returns:
        ``PartitionSpec`` with ``"fsdp"`` at the largest axis divisible by ``axis_size``
        (``None`` before it, nothing after: e.g. ``PartitionSpec("fsdp")`` for rows), or
        ``PartitionSpec()`` (replicated).
    """
    shape = tuple(int(s) for s in shape)
    if axis_size <= 1 or math.prod(shape) < min_size:
        return PartitionSpec()
    divisible = [i for i, s in enumerate(shape) if s % axis_size == 0]
    if not divisible:
        return PartitionSpec()
    axis = max(divisible, key=lambda i: (shape[i], -i))
    return PartitionSpec(*([None] * axis), "fsdp")


def _normal(spec: PartitionSpec) -> PartitionSpec:
    """``spec`` without trailing ``None`` s: the form XLA gives back (``P(None, None)`` and
    ``P()`` place alike but compare unequal, which would recompile the step)."""
    parts = list(spec)
    while parts and parts[-1] is None:
        parts.pop()
    return PartitionSpec(*parts)


def _check_spec(path: str, shape: tuple[int, ...], spec: Any, mesh: jax.sharding.Mesh) -> None:
    """Raise if a user rule's ``spec`` cannot shard an array of ``shape`` on ``mesh``."""
    if len(spec) > len(shape):
        raise ValueError(
            f"The rule for {path!r} gives {spec} ({len(spec)} axes) to an array of shape "
            f"{shape} ({len(shape)} axes)."
        )
    for dim, names in zip(shape, spec, strict=False):
        names = () if names is None else (names,) if isinstance(names, str) else tuple(names)
        unknown = [a for a in names if a not in mesh.shape]
        if unknown:
            raise ValueError(
                f"The rule for {path!r} names mesh axes {unknown}; the mesh has "
                f"{list(mesh.axis_names)}."
            )
        size = math.prod(mesh.shape[a] for a in names)
        if dim % size:
            raise ValueError(
                f"The rule for {path!r} splits an axis of length {dim} (shape {shape}) over "
                f"{size} devices ({spec}); the length must be a multiple of {size}."
            )


def check_rules(rules: Rules) -> list[tuple[re.Pattern, PartitionSpec]]:
    """Check user sharding rules; return them with their regexes compiled.

    Args:
        rules: ``(regex, PartitionSpec)`` pairs.

    Returns:
        ``[(compiled regex, spec), ...]`` in the same order.

    Raises:
        TypeError: for a rule that is not a pair of a string and a ``PartitionSpec``.
        ValueError: for an invalid regex.
    """
    out = []
    for rule in rules:
        if not (
            isinstance(rule, tuple | list)
            and len(rule) == 2
            and isinstance(rule[0], str)
            and isinstance(rule[1], PartitionSpec)
        ):
            raise TypeError(
                f"Expected sharding rules as (regex string, jax.sharding.PartitionSpec) "
                f"pairs; got {rule!r}."
            )
        try:
            out.append((re.compile(rule[0]), rule[1]))
        except re.error as err:
            raise ValueError(f"Invalid regex {rule[0]!r} in a sharding rule: {err}.") from err
    return out


def state_shardings(
    state: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = (),
    *,
    min_size: int = FSDP_MIN_SIZE,
) -> Any:
    """A ``NamedSharding`` for every array leaf of ``state`` (same tree structure).

    Args:
        state: a pytree of arrays or ``jax.ShapeDtypeStruct`` (a :class:`TrainState`, or
            ``jax.eval_shape`` of one); only shapes and paths are read.
        mesh: a mesh with an ``"fsdp"`` axis (:func:`fsdp_mesh`); without one, only the
            user rules shard anything.
        rules: ``(regex, PartitionSpec)`` pairs tried first, in order, on each leaf's path
            (:func:`re.search`); the first match wins.
        min_size: the FSDP rule replicates arrays with fewer elements.

    Returns:
        The tree of shardings.

    Raises:
        TypeError: for a rule that is not a ``(regex, PartitionSpec)`` pair.
        ValueError: for a rule whose spec does not fit the array it matches (too many
            axes, unknown mesh axes, or a length its devices do not divide).
    """
    compiled = check_rules(rules)
    axis_size = int(mesh.shape.get("fsdp", 1))

    def one(key_path: Any, leaf: Any) -> NamedSharding:
        path, shape = path_str(key_path), tuple(np.shape(leaf))
        for pattern, spec in compiled:
            if pattern.search(path):
                _check_spec(path, shape, spec, mesh)
                return NamedSharding(mesh, _normal(spec))
        return NamedSharding(mesh, fsdp_spec(shape, axis_size, min_size))

    return jax.tree_util.tree_map_with_path(one, state)


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` as a global array with ``sharding`` (from any device, or this host's copy)."""
    if isinstance(x, jax.Array) and (jax.process_count() == 1 or not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    # Across processes a process-local array cannot be moved to other hosts' devices:
    # every process builds its own shards from its own (identical) copy.
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_state(
    state: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = (),
    *,
    min_size: int = FSDP_MIN_SIZE,
) -> Any:
    """``state`` with every array placed as :func:`state_shardings` says.

    Leaves already placed so are kept (no copy). A state on other devices, or sharded on
    another mesh, is moved or resharded.

    Args:
        state, mesh, rules, min_size: as for :func:`state_shardings`.

    Returns:
        The placed state (same structure).

    Raises:
        TypeError, ValueError: as :func:`state_shardings`.
    """
    shardings = state_shardings(state, mesh, rules, min_size=min_size)

    def place(x: Any, sharding: NamedSharding) -> Any:
        return x if getattr(x, "sharding", None) == sharding else _place(x, sharding)

    return jax.tree_util.tree_map(place, state, shardings)


def per_device_bytes(tree: Any, shardings: Any) -> int:
    """The bytes of ``tree``'s arrays held by one device under ``shardings`` (the largest
    share where shards differ in size).

    Args:
        tree: a pytree of arrays or ``jax.ShapeDtypeStruct``.
        shardings: a matching tree of shardings (:func:`state_shardings`).

    Returns:
        The number of bytes.
    """

    def one(leaf: Any, sharding: jax.sharding.Sharding) -> int:
        shard = sharding.shard_shape(tuple(np.shape(leaf)))
        return math.prod(shard) * np.dtype(leaf.dtype).itemsize

    return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(one, tree, shardings)))


def _local_value(x: Any) -> Any:
    """``x`` as an array this process can read: a replicated global array's local copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            raise ValueError(
                f"Expected a replicated array (a state of the data-parallel strategies); got "
                f"one of shape {x.shape} sharded as {x.sharding}."
            )
        return x.addressable_data(0)
    return x


def _check_divides(strategy: str, batch: dict[str, Any]) -> None:
    n_local = jax.local_device_count()
    size = np.shape(next(iter(batch.values())))[0]
    if size % n_local:
        raise ValueError(
            f"The {strategy!r} strategy splits each batch over {n_local} local devices, so "
            f"this process's batch size must be a multiple of {n_local}; got {size}."
        )


class _Fsdp:  # the "fsdp" strategy of jdl.train.parallelize (jdl.train.parallel)
    """``jax.jit`` over a ``("data", "fsdp")`` mesh: batches split over both axes, the
    state sharded by :func:`jdl.train.state_shardings` (its placement pinned in the step)."""

    name = "fsdp"

    def __init__(self, mesh: jax.sharding.Mesh | None, rules: Any, min_size: int):
        self.mesh = mesh if mesh is not None else fsdp_mesh()
        if tuple(self.mesh.axis_names) != FSDP_AXES:
            raise ValueError(
                f'The "fsdp" strategy needs a 2-D mesh with axes {FSDP_AXES} '
                f"(jdl.train.fsdp_mesh builds one); got axes {self.mesh.axis_names}."
            )
        check_rules(rules)  # a malformed rule is refused here, not at the first step
        self.rules = tuple(rules)
        self.min_size = min_size
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(FSDP_AXES))

    def shardings(self, state: Any) -> Any:
        """The state's shardings (from shapes and paths only: works on tracers)."""
        return state_shardings(state, self.mesh, self.rules, min_size=self.min_size)

    def compile(
        self, fn: Callable[..., Any], donate_argnums: tuple[int, ...], returns_state: bool
    ) -> Callable[..., Any]:
        constrain = jax.lax.with_sharding_constraint

        def pinned(state: Any, batch: Any) -> Any:
            out = fn(state, batch)
            if not returns_state:
                return constrain(out, self.replicated)
            new, metrics = out
            return constrain(new, self.shardings(new)), constrain(metrics, self.replicated)

        # the inputs keep their placement (put_state / put_batch committed them)
        return jax.jit(pinned, donate_argnums=donate_argnums)

    def put_state(self, state: Any) -> Any:
        return shard_state(state, self.mesh, self.rules, min_size=self.min_size)

    def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        _check_divides(self.name, batch)
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch_sharding)
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)),
            batch,
        )

    def batch_multiple(self) -> int:
        """What every global batch size must be a multiple of (split over all devices)."""
        return math.lcm(jax.device_count(), self.mesh.size)

    def check_training(self, state: Any, batch: dict[str, Any]) -> None:
        """Nothing to check: every layer sees the global batch, as under ``jit``."""

    def unreplicate(self, tree: Any) -> Any:
        # sharded leaves stay global arrays (readable in one process; saved by Orbax shard
        # by shard, each host its own, in several); replicated ones become local copies
        if jax.process_count() == 1:
            return tree
        return jax.tree_util.tree_map(
            lambda x: _local_value(x) if getattr(x, "is_fully_replicated", False) else x, tree
        )
