"""Saving and restoring a :class:`jdl.train.TrainState` with Orbax, one checkpoint per step.

Orbax writes each checkpoint into a temporary directory and renames it when complete,
so an interrupted save never leaves a checkpoint that looks valid. Every function here opens
its Orbax ``CheckpointManager`` and closes it before returning. The callback that saves
during :func:`jdl.fit` (and lets ``resume=True`` continue a run) is
:class:`jdl.train.callbacks.Checkpoint`.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jdl._core.files import no_space_left
from jdl._core.tree import compare_shapes, leaf_paths
from jdl.train.checkpoint_paths import (
    check_shared,
    checkpoint_path,
    is_remote,
    latest_step,
    set_aside,
)
from jdl.train.checkpoint_space import no_space_error, why
from jdl.train.state import TrainState

if TYPE_CHECKING:  # Orbax (and TensorStore) are imported by the functions that use them, so
    import orbax.checkpoint as ocp  # that importing jdl.train (jdl.fit) does not pay for them

__all__ = [
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "latest_step",
    "restore_latest_valid",
    "restore_state",
    "save_state",
    "set_aside",
]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model/optimiser it is restored into."""


class CheckpointCorruptError(ValueError):
    """No checkpoint of a directory (or not the one asked for) can be read back; the
    message names every step tried and why it failed."""


class _Unreadable(Exception):
    """One checkpoint cannot be read back (the message says why, on one line)."""


def _saveable(tree: dict[str, Any]) -> dict[str, Any]:
    """The arrays to hand to Orbax: global arrays, which it saves shard by shard, each
    process writing the shards it holds (one copy of a replicated one), from the devices.

    With several processes, global arrays (a ``"sharded"`` or ``"fsdp"`` state) are saved
    as they are. A process-local array (the same value on every process, as the ``"jit"``
    strategy or ``unreplicate`` leaves it) is one Orbax refuses ("host local"): it becomes
    a global array replicated over all devices, built from the copies on each process's
    devices -- device to device, never through a host copy of the state.
    """
    if jax.process_count() == 1:
        return tree
    return jax.tree_util.tree_map(_global, tree)


def _global(x: Any) -> Any:
    """A process-local ``jax.Array`` as a global replicated one; anything else as it is."""
    if not isinstance(x, jax.Array) or not x.is_fully_addressable:
        return x
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("replica",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    copies = [jax.device_put(x, device) for device in jax.local_devices()]
    return jax.make_array_from_single_device_arrays(x.shape, sharding, copies)


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """``path -> shape`` of every leaf (arrays, or Orbax's metadata of saved arrays)."""
    return {path: tuple(getattr(x, "shape", np.shape(x))) for path, x in leaf_paths(tree).items()}


def _params_first(key: str) -> tuple[bool, str]:
    return (not key.startswith("params"), key)


def _compare(saved: Any, wanted: Any) -> tuple[list[str], list[str], list[str]]:
    """What ``saved`` lacks, what it has in excess, and shape mismatches, as message lines."""
    missing, unexpected, mismatched = compare_shapes(
        _shapes(wanted), _shapes(saved), key=_params_first
    )
    return (
        missing,
        unexpected,
        [f"{k}: checkpoint {found}, model {want}" for k, want, found in mismatched],
    )


_LEAK_BOUNDED = False


def _leaks_json_references() -> bool:
    """Whether the installed TensorStore leaks a reference to the JSON it returns to Python.

    TensorStore 0.1.86 does: every key and value of a JSON object it converts keeps one
    reference too many, so it (and all it holds) is never freed. One small probe tells, so a
    fixed release is left alone.
    """
    try:
        import tensorstore as ts

        spec = {"driver": "zarr", "kvstore": {"driver": "memory"}, "metadata": {"shape": [1]}}
        array = ts.Spec(spec).to_json()["metadata"]["shape"]
    except Exception:  # no such API: nothing known to leak
        return False
    return sys.getrefcount(array) > 2  # ``array`` and getrefcount's argument, if no leak


def _bound_tensorstore_leak() -> None:
    """Stop the memory growth of every save (issue #19): once per process, idempotent.

    For every saved (and restored) item Orbax reads all of TensorStore's kvstore metrics
    twice, only to log the "raw bytes" throughput of the write; with a TensorStore that
    leaks the JSON it returns (:func:`_leaks_json_references`), each read leaks the metrics
    (~20 KB), ~40 KB per checkpoint. Here Orbax's ``get_tensorstore_raw_bytes`` answers
    ``None`` instead, which Orbax takes as "no raw-byte numbers": it skips that log line and
    its ``jax.monitoring`` events, and saves and restores exactly as before. And for every
    array written Orbax resolves its local file spec with ``KvStore.Spec(...).to_json()``
    (~5 KB per checkpoint): :mod:`jdl.train._tensorstore_leak` builds that JSON instead.
    """
    global _LEAK_BOUNDED
    if _LEAK_BOUNDED:
        return
    _LEAK_BOUNDED = True
    if not _leaks_json_references():
        return
    try:
        from orbax.checkpoint._src.serialization import tensorstore_utils
    except ImportError:  # another Orbax layout: leave it as it is
        return
    if hasattr(tensorstore_utils, "get_tensorstore_raw_bytes"):
        tensorstore_utils.get_tensorstore_raw_bytes = _no_raw_bytes
    from jdl.train import _tensorstore_leak

    _tensorstore_leak.avoid_spec_to_json()


def _no_raw_bytes(*args: Any, **kwargs: Any) -> None:
    """Orbax's ``get_tensorstore_raw_bytes`` without the leaking metrics read (``None``:
    no raw-byte telemetry)."""
    return None


def _manager(directory: str | Path, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    import orbax.checkpoint as ocp

    _bound_tensorstore_leak()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    path = checkpoint_path(directory)  # gs://... stays remote (pathlib would make it local)
    return ocp.CheckpointManager(
        path if is_remote(path) else path.absolute(),
        options=options,
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
            "extra": ocp.StandardCheckpointHandler(),
        },
    )


def save_state(
    directory: str | Path,
    state: TrainState,
    *,
    metadata: dict[str, Any] | None = None,
    max_to_keep: int | None = None,
    extra: dict[str, TrainState] | None = None,
) -> None:
    """Save a (plain, unreplicated, or sharded) state as checkpoint number ``state.step``.

    Orbax writes global arrays shard by shard from the devices, each process its own
    shards: a state sharded by ``strategy="fsdp"`` (:func:`jdl.train.shard_state`) is
    never gathered onto one device or host.

    Args:
        directory: the checkpoint directory (one sub-directory per saved step): a local
            path or an object-store URL (``gs://bucket/run``); with several processes, one
            directory that every process sees (a shared filesystem or an object store).
        state: the :class:`TrainState` to save.
        metadata: JSON-serialisable extras saved beside it (e.g. the history so far).
        max_to_keep: keep only this many most recent checkpoints.
        extra: other states of the same model and optimiser saved in the same checkpoint
            (e.g. the best epoch's, for ``EarlyStopping(restore_best=True)``), by name;
            :func:`restore_state` reads them back with ``extra=``.

    Raises:
        OSError: ``errno.ENOSPC``, if the disk (or quota) is full: the message says "No space
            left on device" and names the step and directory. The partial checkpoint is
            removed; the ones saved before are untouched and restore.
        ValueError: with several processes, if ``directory`` is not one directory that
            every process sees (on every process, before anything is saved).
    """
    import orbax.checkpoint as ocp

    check_shared(directory)

    items = {
        "state": ocp.args.StandardSave(_saveable(state.arrays)),
        "meta": ocp.args.JsonSave(metadata or {}),
    }
    if extra:
        arrays = {name: s.arrays for name, s in extra.items()}
        items["extra"] = ocp.args.StandardSave(_saveable(arrays))
    step = int(state.step)
    threads = set(threading.enumerate())
    try:
        with _manager(directory, max_to_keep) as manager:
            manager.save(step, args=ocp.args.Composite(**items), force=True)
            manager.wait_until_finished()
    except Exception as err:
        if not no_space_left(err):
            raise
        raise no_space_error(directory, step, err, threads, latest_step) from err


def restore_state(
    directory: str | Path,
    like: TrainState,
    *,
    step: int | None = None,
    extra: Sequence[str] = (),
) -> tuple[TrainState, dict[str, Any]] | None:
    """Restore the latest (or a given) checkpoint into the structure of ``like``.

    A checkpoint that cannot be read back (a truncated or missing file, unreadable
    metadata: a crash or a full disk while it was written or copied) is skipped with a
    warning naming its directory and the error, and the next older one is tried, and so
    on. Nothing is deleted; :class:`jdl.train.callbacks.Checkpoint` moves the skipped ones
    aside (:func:`set_aside`) before it saves again.

    Args:
        directory: the checkpoint directory.
        like: a state of the same model and optimiser (e.g. a fresh ``create_state``);
            its model and optimiser are kept, its arrays replaced. Each array is
            restored with the sharding of ``like``'s: a plain state restores onto one
            device, one placed by :func:`jdl.train.shard_state` restores sharded on its
            mesh -- whatever the mesh (or strategy) the checkpoint was saved from.
        step: which checkpoint (no other is tried); default the latest that can be read.
        extra: names of states saved with ``save_state(..., extra=)`` to restore too
            (into the structure of ``like``); those the checkpoint holds come back in
            ``metadata["extra"]`` (a dict, empty if none).

    Returns:
        ``(state, metadata)``, or ``None`` if the directory holds no checkpoint.

    Raises:
        CheckpointMismatchError: if the checkpoint's parameters or optimiser state do not
            match ``like`` — the message lists missing, unexpected and mismatched entries.
            A readable checkpoint that does not fit is never skipped.
        CheckpointCorruptError: if no checkpoint (or not ``step``) can be read — the
            message names the directory, every step tried and why it failed.
        FileNotFoundError: if ``step`` is given and the directory has no such checkpoint.
        ValueError: with several processes, if ``directory`` is not one directory that
            every process sees (on every process).
    """
    found = restore_latest_valid(directory, like, step=step, extra=extra)
    return None if found is None else (found[0], found[1])


def restore_latest_valid(
    directory: str | Path,
    like: TrainState,
    *,
    step: int | None = None,
    extra: Sequence[str] = (),
    require: Sequence[str] = (),
) -> tuple[TrainState, dict[str, Any], dict[int, str]] | None:
    """:func:`restore_state`, also saying which newer checkpoints it skipped, and why.

    Args:
        directory, like, step, extra: as for :func:`restore_state`.
        require: keys the checkpoint's metadata must hold; a checkpoint whose metadata
            lacks one counts as unreadable (e.g. ``("history", "epoch")``, which every
            :class:`jdl.train.callbacks.Checkpoint` writes).

    Returns:
        ``(state, metadata, skipped)``, ``skipped`` mapping each newer step that could
        not be read to why (empty if the latest was restored); ``None`` if the directory
        holds no checkpoint.

    Raises:
        As :func:`restore_state`.
    """
    check_shared(directory)  # every process must take the same decision below
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    skipped: dict[int, str] = {}
    with _manager(directory) as manager:
        steps = sorted(manager.all_steps(), reverse=True)
        if step is not None:
            if step not in steps:
                held = ", ".join(map(str, sorted(steps))) or "none"
                raise FileNotFoundError(
                    f"No checkpoint for step {step} in {directory}; it holds steps: {held}."
                )
            steps = [step]
        for index, candidate in enumerate(steps):
            try:
                state, meta = _restore_step(manager, directory, candidate, like, extra, require)
            except _Unreadable as err:
                skipped[candidate] = str(err)
                if step is not None:  # the one asked for: no other is tried
                    break
                if index + 1 < len(steps):
                    then = f"trying the previous one, step {steps[index + 1]}"
                else:
                    then = "no older checkpoint is left"
                warnings.warn(
                    f"Checkpoint {path / str(candidate)} cannot be restored "
                    f"({err}); {then}. It is left in place (not deleted).",
                    stacklevel=3,
                )
                continue
            return state, meta, skipped
    if not steps:
        return None
    tried = "\n".join(f"  step {s} ({path / str(s)}): {why}" for s, why in skipped.items())
    raise CheckpointCorruptError(
        f"No checkpoint in {directory} can be restored; tried {len(skipped)} step(s), "
        f"newest first:\n{tried}\nNothing was deleted. Move the unreadable step directories "
        f"away (or use another directory) to start afresh."
    )


def _restore_step(
    manager: ocp.CheckpointManager,
    directory: str | Path,
    step: int,
    like: TrainState,
    extra: Sequence[str],
    require: Sequence[str],
) -> tuple[TrainState, dict[str, Any]]:
    """Checkpoint ``step`` restored into ``like``.

    Raises:
        _Unreadable: if Orbax/TensorStore cannot read it back (missing or truncated files,
            unreadable metadata), or its metadata is not a JSON object holding ``require``.
        CheckpointMismatchError: if it is readable but does not fit ``like``.
    """
    try:
        saved_meta = manager.item_metadata(step)
    except MemoryError:
        raise
    except Exception as err:  # TensorStore, JSON and missing-file errors alike
        raise _Unreadable(why(err)) from err
    saved_tree = _item(saved_meta, "state")
    wanted = like.arrays
    if saved_tree is not None:
        missing, unexpected, mismatched = _compare(saved_tree, wanted)
        if missing or unexpected or mismatched:
            lines = [f"The checkpoint in {directory} (step {step}) does not match the model:"]
            for title, items in (
                ("missing from the checkpoint", missing),
                ("unexpected in the checkpoint", unexpected),
                ("shape mismatch", mismatched),
            ):
                if items:
                    shown = ", ".join(items[:20]) + (" ..." if len(items) > 20 else "")
                    lines.append(f"  {title} ({len(items)}): {shown}")
            lines.append("Use another directory, or resume=False to start afresh.")
            raise CheckpointMismatchError("\n".join(lines))
    import orbax.checkpoint as ocp

    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, wanted)
    items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
    saved_extra = _item(saved_meta, "extra")
    names = list(saved_extra.keys()) if hasattr(saved_extra, "keys") else []
    if set(names) & set(extra):  # restored whole: Orbax restores a saved tree entire
        items["extra"] = ocp.args.StandardRestore({name: abstract for name in names})
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    except MemoryError:
        raise
    except Exception as err:  # the shapes fit (checked above): the files are bad
        raise _Unreadable(why(err)) from err
    meta = restored["meta"] if restored["meta"] is not None else {}
    if not isinstance(meta, dict):
        raise _Unreadable(f"its metadata is a JSON {type(meta).__name__}, not an object")
    lacking = [key for key in require if key not in meta]
    if lacking:
        raise _Unreadable(f"its metadata lacks {lacking} (it holds {sorted(meta)})")
    meta = dict(meta)
    if extra:
        found = restored["extra"] if "extra" in items else {}
        meta["extra"] = {k: like.replace(**v) for k, v in found.items() if k in extra}
    return like.replace(**restored["state"]), meta


def _item(composite: Any, name: str) -> Any:
    """Item ``name`` of an Orbax composite (of metadata), or ``None`` if it has none."""
    try:
        return composite[name] if composite is not None else None
    except (KeyError, AttributeError):
        return None
