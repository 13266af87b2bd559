"""jdl.train.checkpoint saves and restores, and closes every Orbax manager it opens."""

from __future__ import annotations

import os
import types

import chex
import numpy as np
import optax
import pytest

from jdl.nn import MLP
from jdl.train import (
    Checkpoint,
    CheckpointMismatchError,
    History,
    callbacks,
    checkpoint,
    create_state,
    latest_step,
    restore_state,
    save_state,
)

X = np.zeros((2, 5), np.float32)


@pytest.fixture
def managers(monkeypatch):
    """Every CheckpointManager the module opens, and which of them were closed."""
    opened, closed = [], []
    real = checkpoint._manager

    def tracking(*args, **kwargs):
        manager = real(*args, **kwargs)
        close = manager.close

        def tracked_close():
            closed.append(manager)
            close()

        manager.close = tracked_close
        opened.append(manager)
        return manager

    monkeypatch.setattr(checkpoint, "_manager", tracking)
    return opened, closed


def _state(seed=0, num_outputs=3):
    return create_state(MLP(widths=(8,), num_outputs=num_outputs), optax.adam(1e-3), X, seed)


def test_save_latest_restore_close_every_manager(tmp_path, managers):
    opened, closed = managers
    assert latest_step(tmp_path / "none") is None
    assert restore_state(tmp_path / "none", _state()) is None
    state = _state(seed=1).replace(step=7)
    save_state(tmp_path, state, metadata={"epoch": 2})
    assert latest_step(tmp_path) == 7
    restored, meta = restore_state(tmp_path, _state(seed=2))
    assert meta == {"epoch": 2} and int(restored.step) == 7
    chex.assert_trees_all_close(restored.params, state.params)
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        restore_state(tmp_path, _state(num_outputs=4))
    assert len(opened) == 3  # save and two restores; latest_step reads names, opens none
    assert [id(m) for m in closed] == [id(m) for m in opened]


def test_the_checkpoint_callback_saves_at_the_end_only_what_is_new(tmp_path, managers):
    opened, closed = managers
    assert callbacks.Checkpoint is Checkpoint
    assert not hasattr(checkpoint, "Checkpoint")  # checkpoint.py only saves and restores
    run = types.SimpleNamespace(state=_state().replace(step=3), history=History(), epoch=1, step=3)
    callback = Checkpoint(tmp_path / "ck", every=1)
    callback.on_train_end(run)  # nothing saved yet: saves
    assert latest_step(tmp_path / "ck") == 3
    n = len(opened)
    callback.on_train_end(run)  # the latest checkpoint is this step: nothing to do
    assert len(opened) == n  # one look at the latest step's name, no save
    assert [id(m) for m in closed] == [id(m) for m in opened]


def test_latest_step_reads_names_only_while_another_process_saves(tmp_path, monkeypatch):
    for name in ("3", "12", "5.orbax-checkpoint-tmp-1733", "24.corrupt", "²"):
        (tmp_path / name).mkdir()  # none holds Orbax's metadata: names alone count
    assert latest_step(tmp_path) == 12  # a step being written or set aside is not counted

    def vanished(path, *args, **kwargs):  # a peer's max_to_keep deleted it meanwhile
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "stat", vanished)
    assert latest_step(tmp_path) == 12
    assert latest_step(tmp_path / "none") is None
