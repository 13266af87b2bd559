"""Saving and restoring a :class:`jdl.train.TrainState` with Orbax, one checkpoint per step.

Orbax writes each checkpoint into a temporary directory and renames it when complete,
so an interrupted save never leaves a checkpoint that looks valid. Every function here opens
its Orbax ``CheckpointManager`` and closes it before returning. The callback that saves
during :func:`jdl.fit` (and lets ``resume=True`` continue a run) is
:class:`jdl.train.callbacks.Checkpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jdl._core.tree import compare_shapes, leaf_paths
from jdl.train.state import TrainState

__all__ = ["CheckpointMismatchError", "latest_step", "restore_state", "save_state"]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model/optimiser it is restored into."""


def _saveable(tree: dict[str, Any]) -> dict[str, Any]:
    """The arrays to hand to Orbax.

    With several processes every process holds the same (replicated) state, but as
    arrays on its own devices, which Orbax refuses to save ("host local"); NumPy copies
    are saved once, by the primary process.
    """
    if jax.process_count() == 1:
        return tree
    return jax.tree_util.tree_map(np.asarray, tree)


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


def _manager(directory: str | Path, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(
        Path(directory).absolute(),
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
    """Save a (plain, unreplicated) state as checkpoint number ``state.step``.

    Args:
        directory: the checkpoint directory (one sub-directory per saved step).
        state: the :class:`TrainState` to save.
        metadata: JSON-serialisable extras saved beside it (e.g. the history so far).
        max_to_keep: keep only this many most recent checkpoints.
        extra: other states of the same model and optimiser saved in the same checkpoint
            (e.g. the best epoch's, for ``EarlyStopping(restore_best=True)``), by name;
            :func:`restore_state` reads them back with ``extra=``.
    """
    items = {
        "state": ocp.args.StandardSave(_saveable(state.arrays)),
        "meta": ocp.args.JsonSave(metadata or {}),
    }
    if extra:
        arrays = {name: s.arrays for name, s in extra.items()}
        items["extra"] = ocp.args.StandardSave(_saveable(arrays))
    with _manager(directory, max_to_keep) as manager:
        manager.save(int(state.step), args=ocp.args.Composite(**items), force=True)
        manager.wait_until_finished()


def restore_state(
    directory: str | Path,
    like: TrainState,
    *,
    step: int | None = None,
    extra: Sequence[str] = (),
) -> tuple[TrainState, dict[str, Any]] | None:
    """Restore the latest (or a given) checkpoint into the structure of ``like``.

    Args:
        directory: the checkpoint directory.
        like: a state of the same model and optimiser (e.g. a fresh ``create_state``);
            its model and optimiser are kept, its arrays replaced.
        step: which checkpoint; default the latest.
        extra: names of states saved with ``save_state(..., extra=)`` to restore too
            (into the structure of ``like``); those the checkpoint holds come back in
            ``metadata["extra"]`` (a dict, empty if none).

    Returns:
        ``(state, metadata)``, or ``None`` if the directory holds no checkpoint.

    Raises:
        CheckpointMismatchError: if the checkpoint's parameters or optimiser state do not
            match ``like`` — the message lists missing, unexpected and mismatched entries.
    """
    if not Path(directory).exists():
        return None
    with _manager(directory) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            return None
        saved_meta = manager.item_metadata(step)
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
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, wanted)
        items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
        saved_extra = _item(saved_meta, "extra")
        names = list(saved_extra.keys()) if hasattr(saved_extra, "keys") else []
        if set(names) & set(extra):  # restored whole: Orbax restores a saved tree entire
            items["extra"] = ocp.args.StandardRestore({name: abstract for name in names})
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    meta = dict(restored["meta"] or {})
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


def latest_step(directory: str | Path) -> int | None:
    """The step of the latest checkpoint in ``directory``; ``None`` if it holds none.

    Args:
        directory: a checkpoint directory (it need not exist).
    """
    if not Path(directory).exists():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()
