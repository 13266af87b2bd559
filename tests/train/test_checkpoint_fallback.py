"""Issue #19: a corrupted latest checkpoint falls back to the previous good one (warning,
exact resumption, later saves still work), none readable raises CheckpointCorruptError;
Checkpoint(every_steps=) saves between steps and resumes exactly mid-epoch."""

from __future__ import annotations

import os
import re
import shutil
import warnings

import jax
import numpy as np
import optax
import pytest
from conftest import CORRUPTIONS, TinyMLP, blobs

import jdl
from jdl.train import (
    Checkpoint,
    CheckpointCorruptError,
    CheckpointMismatchError,
    callbacks,
    latest_step,
    restore_state,
)

# A failed TensorStore read may leave a callback for Orbax's closed event loop ("Event loop
# is closed", ignored): Orbax's, harmless, not what these tests look at.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

KW = dict(batch_size=32, loss="cross_entropy", verbose=0, optimizer=optax.adam(0.05))
MODEL = TinyMLP(dropout=0.2)  # dropout: the random key must resume exactly too


def _same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _steps(directory):
    """The step directories Orbax sees (names that are numbers), sorted."""
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted 3-epoch run (8 steps an epoch), checkpointed at steps 8, 16, 24."""
    directory = tmp_path_factory.mktemp("full")
    history = jdl.fit(
        MODEL, blobs(256), epochs=3,
        callbacks=[Checkpoint(directory)], **KW,
    )  # fmt: skip
    assert _steps(directory) == [8, 16, 24]
    return history, directory


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, full, how):
    history, source = full
    directory = tmp_path / "ck"
    shutil.copytree(source, directory)
    CORRUPTIONS[how](directory / "24")
    with pytest.warns(UserWarning) as caught:
        resumed = jdl.fit(
            MODEL, blobs(256), epochs=3,
            callbacks=[Checkpoint(directory)], resume=True, **KW,
        )  # fmt: skip
    messages = [str(w.message) for w in caught]
    bad = [m for m in messages if "cannot be restored" in m]
    assert len(bad) == 1 and "\n" not in bad[0], messages
    assert re.search(
        rf"Checkpoint {re.escape(str(directory / '24'))} cannot be restored \(\w+", bad[0]
    )
    assert "trying the previous one, step 16" in bad[0] and "not deleted" in bad[0]
    # Epoch 3 trained again from step 16: exactly the uninterrupted run.
    assert resumed.epochs == [1, 2, 3] and resumed.metrics == history.metrics
    assert _same(resumed.variables, history.variables)
    # The bad checkpoint is kept, renamed; the new step 24 took its place and restores.
    assert (directory / "24.corrupt").is_dir() and _steps(directory) == [8, 16, 24]
    assert any("24.corrupt" in m and "not deleted" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state, meta = restore_state(directory, history.state)
    assert (
        int(state.step) == 24 and meta["epoch"] == 3 and _same(state.params, history.state.params)
    )


def test_later_saves_and_max_to_keep_ignore_the_set_aside_checkpoint(tmp_path, full):
    history, source = full
    directory = tmp_path / "ck"
    shutil.copytree(source, directory)
    CORRUPTIONS["truncated manifest"](directory / "24")
    with pytest.warns(UserWarning, match="cannot be restored"):  # and longer: steps 32, 40
        longer = jdl.fit(
            MODEL, blobs(256), epochs=5,
            callbacks=[Checkpoint(directory)], resume=True, **KW,
        )  # fmt: skip
    assert (
        longer.epochs == [1, 2, 3, 4, 5] and longer.metrics["loss"][:3] == history.metrics["loss"]
    )
    assert _steps(directory) == [24, 32, 40] and (directory / "24.corrupt").is_dir()


def test_no_readable_checkpoint_raises_naming_every_step_tried(tmp_path, full):
    history, source = full
    directory = tmp_path / "ck"
    shutil.copytree(source, directory)
    CORRUPTIONS["deleted state"](directory / "24")
    CORRUPTIONS["garbage meta json"](directory / "16")
    CORRUPTIONS["truncated data"](directory / "8")
    with pytest.warns(UserWarning, match="cannot be restored"):
        with pytest.raises(CheckpointCorruptError) as err:
            jdl.fit(MODEL, blobs(256), epochs=3, callbacks=[Checkpoint(directory)],
                    resume=True, **KW)  # fmt: skip
    text = str(err.value)
    assert f"No checkpoint in {directory} can be restored; tried 3 step(s)" in text
    for step, why in ((24, "KeyError"), (16, "JSONDecodeError"), (8, "Error")):
        assert re.search(
            rf"step {step} \({re.escape(str(directory / str(step)))}\): \w*{why}", text
        )
    assert "Nothing was deleted" in text and _steps(directory) == [8, 16, 24]  # untouched
    with warnings.catch_warnings():  # one step asked for: an error, no warning
        warnings.simplefilter("error")
        with pytest.raises(CheckpointCorruptError, match=r"tried 1 step\(s\).*\n  step 16 "):
            restore_state(directory, history.state, step=16)
    with pytest.raises(FileNotFoundError, match="No checkpoint for step 5 .* steps: 8, 16, 24"):
        restore_state(directory, history.state, step=5)


def test_a_readable_checkpoint_of_another_model_still_raises_the_mismatch(tmp_path, full):
    _, source = full
    directory = tmp_path / "ck"
    shutil.copytree(source, directory)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)step 24.*shape mismatch"):
        jdl.fit(TinyMLP(num_outputs=4), blobs(256), epochs=3,
                callbacks=[Checkpoint(directory)], resume=True, **KW)  # fmt: skip
    # Behind a corrupt latest checkpoint too: the readable one is not skipped.
    CORRUPTIONS["emptied metadata"](directory / "24")
    with pytest.warns(UserWarning, match="24 cannot be restored"):
        with pytest.raises(CheckpointMismatchError, match="step 16"):
            jdl.fit(TinyMLP(num_outputs=4), blobs(256), epochs=3,
                    callbacks=[Checkpoint(directory)], resume=True, **KW)  # fmt: skip
    assert _steps(directory) == [8, 16, 24]


class _Crash(callbacks.Callback):
    """Raises once the run has reached ``at`` steps (seen when metrics are fetched)."""

    def __init__(self, at):
        self.at = at

    def on_metrics(self, run, first_step, metrics):
        if run.step >= self.at:
            raise RuntimeError("killed")


def test_every_steps_saves_between_steps_and_resumes_exactly_mid_epoch(tmp_path, full):
    history, _ = full
    kw = KW

    def saver():
        return Checkpoint(tmp_path, every_steps=3, max_to_keep=None)

    # Killed after step 11 (seen at the next fetch, step 12's, before it is saved).
    with pytest.raises(RuntimeError, match="killed"):
        jdl.fit(MODEL, blobs(256), epochs=3, callbacks=[saver(), _Crash(11)], **kw)
    assert _steps(tmp_path) == [3, 6, 8, 9]  # every 3 steps, and each epoch's end
    resumed = jdl.fit(MODEL, blobs(256), epochs=3, callbacks=[saver()], resume=True, **kw)
    assert resumed.epochs == [1, 2, 3] and resumed.steps == [8, 16, 24]
    assert resumed.metrics == history.metrics  # epoch 2 averages all 8 of its steps
    assert _same(resumed.variables, history.variables)
    assert _steps(tmp_path) == [3, 6, 8, 9, 12, 15, 16, 18, 21, 24]  # 24 saved once


def test_every_steps_alone_and_argument_checks(tmp_path, full):
    history, _ = full
    saver = Checkpoint(tmp_path, every=None, every_steps=5, max_to_keep=None)
    jdl.fit(MODEL, blobs(256), steps=12, callbacks=[saver], **KW)
    assert _steps(tmp_path) == [5, 10, 12]  # no epoch-end save at 8; the run's end at 12
    resumed = jdl.fit(MODEL, blobs(256), epochs=3,
                      callbacks=[Checkpoint(tmp_path, every=None, every_steps=5)],
                      resume=True, **KW)  # fmt: skip
    assert _same(resumed.variables, history.variables)
    assert latest_step(tmp_path) == 24
    for kwargs, match in (
        (dict(every_steps=0), r"every_steps must be a positive number of steps or None; got 0"),
        (dict(every_steps=2.5), r"every_steps .* got 2\.5"),
        (dict(every=True), r"every must be a positive number of epochs or None; got True"),
        (dict(every=None), r"needs every \(epochs\) or every_steps \(steps\).*every=None"),
        (dict(max_to_keep=0), r"max_to_keep must be a positive integer or None .*got 0"),
    ):
        with pytest.raises(ValueError, match=match):
            Checkpoint(tmp_path, **kwargs)
