"""Checkpoints of a training run on Orbax: save every N epochs, resume exactly.

Orbax writes each checkpoint into a temporary directory and renames it when complete,
so an interrupted save never leaves a checkpoint that looks valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jdl.train.callbacks import Callback
from jdl.train.state import TrainState

__all__ = ["Checkpoint", "CheckpointMismatchError", "restore_state", "save_state"]

_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model/optimiser it is restored into."""


def _arrays(state: TrainState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in _FIELDS}


def _saveable(tree: dict[str, Any]) -> dict[str, Any]:
    """The arrays to hand to Orbax.

    With several processes every process holds the same (replicated) state, but as
    arrays on its own devices, which Orbax refuses to save ("host local"); NumPy copies
    are saved once, by the primary process.
    """
    if jax.process_count() == 1:
        return tree
    return jax.tree_util.tree_map(np.asarray, tree)


def _paths(tree) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = "/".join(
            str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path
        )
        out[key] = (tuple(getattr(leaf, "shape", np.shape(leaf))), str(getattr(leaf, "dtype", "")))
    return out


def _params_first(key: str) -> tuple[bool, str]:
    return (not key.startswith("params"), key)


def _compare(saved: dict, wanted: dict) -> tuple[list[str], list[str], list[str]]:
    missing = sorted(set(wanted) - set(saved), key=_params_first)
    unexpected = sorted(set(saved) - set(wanted), key=_params_first)
    mismatched = [
        f"{k}: checkpoint {saved[k][0]}, model {wanted[k][0]}"
        for k in sorted(set(saved) & set(wanted), key=_params_first)
        if saved[k][0] != wanted[k][0]
    ]
    return missing, unexpected, mismatched


def _manager(directory: str | Path, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(
        Path(directory).absolute(),
        options=options,
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        },
    )


def save_state(
    directory: str | Path,
    state: TrainState,
    *,
    metadata: dict[str, Any] | None = None,
    max_to_keep: int | None = None,
) -> None:
    """Save a (plain, unreplicated) state as checkpoint number ``state.step``.

    Args:
        directory: the checkpoint directory (one sub-directory per saved step).
        state: the :class:`TrainState` to save.
        metadata: JSON-serialisable extras saved beside it (e.g. the history so far).
        max_to_keep: keep only this many most recent checkpoints.
    """
    with _manager(directory, max_to_keep) as manager:
        manager.save(
            int(state.step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_saveable(_arrays(state))),
                meta=ocp.args.JsonSave(metadata or {}),
            ),
            force=True,
        )
        manager.wait_until_finished()


def restore_state(
    directory: str | Path, like: TrainState, *, step: int | None = None
) -> tuple[TrainState, dict[str, Any]] | None:
    """Restore the latest (or a given) checkpoint into the structure of ``like``.

    Args:
        directory: the checkpoint directory.
        like: a state of the same model and optimiser (e.g. a fresh ``create_state``);
            its model and optimiser are kept, its arrays replaced.
        step: which checkpoint; default the latest.

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
        saved_tree = saved_meta["state"] if saved_meta is not None else None
        wanted = _arrays(like)
        if saved_tree is not None:
            missing, unexpected, mismatched = _compare(_paths(saved_tree), _paths(wanted))
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
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
    return like.replace(**restored["state"]), dict(restored["meta"] or {})


class Checkpoint(Callback):
    """Save the training state with Orbax every ``every`` epochs and at the end.

    With ``jdl.fit(..., resume=True)`` a run continues from the latest checkpoint in
    ``directory``: the state, the history so far and the position in the data are
    restored, so the final parameters equal those of an uninterrupted run.

    Args:
        directory: where checkpoints go (created if needed).
        every: save every this many epochs.
        max_to_keep: keep only the most recent checkpoints (``None`` keeps all).

    Raises:
        ValueError: if ``every`` is not positive.
    """

    def __init__(self, directory: str | Path, every: int = 1, max_to_keep: int | None = 3):
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs; got {every}.")
        self.directory = Path(directory)
        self.every = every
        self.max_to_keep = max_to_keep

    def save(self, run) -> None:
        """Save the run's current state and history now."""
        save_state(
            self.directory,
            run.state,
            metadata={"history": run.history.to_dict(), "epoch": run.epoch},
            max_to_keep=self.max_to_keep,
        )

    def on_epoch_recorded(self, run):
        if run.epoch % self.every == 0:
            self.save(run)

    def on_train_end(self, run):
        if not self.directory.exists() or _manager(self.directory).latest_step() != run.step:
            self.save(run)
