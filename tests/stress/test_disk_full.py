"""A full disk (a small tmpfs, filled) while checkpointing and while preparing a dataset: the
error says "No space left on device" and names the directory; the last good checkpoint and
the datasets already prepared survive; nothing half-written is taken for complete; once
space is freed the same call succeeds."""

from __future__ import annotations

import errno
import re
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jdl
import jdl.data as jd
from jdl.train import Checkpoint, callbacks, latest_step, restore_state, save_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_interrupted_prepare import _leftovers  # noqa: E402  (tests/data's own check)

# A save that fails leaves Orbax's asyncio tasks with exceptions nobody retrieves ("Exception
# ignored"): Orbax's, harmless, not what these tests look at.
pytestmark = [
    pytest.mark.stress,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MODEL = jdl.nn.MLP(widths=(16,), num_outputs=3, dropout=0.2)
KW = dict(batch_size=32, loss="cross_entropy", verbose=0, optimizer=optax.adam(0.05), log_every=1)


def _data(n: int = 256):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(3, 5))[y] * 3 + rng.normal(size=(n, 5))
    return jd.from_arrays(x.astype(np.float32), y)


def _same(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.orbax-checkpoint-tmp*"))


class _FillAt(callbacks.Callback):
    """Fills the disk once the run has reached step ``at``."""

    def __init__(self, at, fill, disk):
        self.at, self.fill, self.disk, self.filler = at, fill, disk, None

    def on_metrics(self, run, first_step, metrics):
        if run.step >= self.at and self.filler is None:
            self.filler = self.fill(self.disk)


def test_a_full_disk_stops_checkpointing_saying_no_space_and_the_last_one_resumes(
    small_disk, fill, figures
):
    full = jdl.fit(MODEL, _data(), epochs=3, **KW)
    with small_disk("16m") as disk:
        directory = disk / "ck"
        filling = _FillAt(6, fill, disk)  # after the save of step 5; the next is step 8's
        with pytest.raises(OSError) as err:
            jdl.fit(MODEL, _data(), epochs=3, callbacks=[Checkpoint(directory, every_steps=5),
                                                         filling], **KW)  # fmt: skip
        message = str(err.value)
        assert err.value.errno == errno.ENOSPC
        assert f"No space left on device to save checkpoint step 8 in {directory} " in message
        assert "the latest complete checkpoint, step 5, is untouched" in message
        assert _partials(directory) == [] and latest_step(directory) == 5
        # The disk still full: the checkpoint restores, and the resumed run's next save
        # fails the same way.
        like = full.state
        state, meta = restore_state(directory, like)
        assert int(state.step) == 5 and meta["history"]["steps"] == []  # mid-epoch 1
        with pytest.raises(OSError, match="No space left on device to save checkpoint step 8"):
            jdl.fit(MODEL, _data(), epochs=3, callbacks=[Checkpoint(directory, every_steps=5)],
                    resume=True, **KW)  # fmt: skip
        filling.filler.unlink()
        resumed = jdl.fit(MODEL, _data(), epochs=3, resume=True,
                          callbacks=[Checkpoint(directory, every_steps=5)], **KW)  # fmt: skip
    assert resumed.metrics == full.metrics and _same(resumed.variables, full.variables)
    figures(f"fit on a full 16 MiB tmpfs: {type(err.value).__name__}: {message}")
    figures("the disk still full, step 5 restored; freed, the resumed run ended bitwise exact")


#: Free bytes left on the disk before a save: none, part of a checkpoint (~104 KiB on disk
#: here: 18 files), or plenty.
SAVE_LEVELS = (0, 8 << 10, 32 << 10, 64 << 10, 88 << 10, 1 << 20)


def test_saves_into_a_full_disk_at_several_levels_keep_the_previous_checkpoint(
    small_disk, fill, figures
):
    state = jdl.train.create_state(MODEL, optax.adam(0.05), np.zeros((1, 5), np.float32), 0)
    outcomes = []
    with small_disk("8m") as disk:
        directory = disk / "ck"
        save_state(directory, state.replace(step=1))
        for k, leave in enumerate(SAVE_LEVELS, 2):
            filler = fill(disk, leave)
            try:
                save_state(directory, state.replace(step=k), max_to_keep=2)
            except OSError as err:
                assert err.errno == errno.ENOSPC and str(directory) in str(err), err
                assert f"step {k} in {directory}" in str(err)
                assert _partials(directory) == [] and latest_step(directory) == k - 1
                outcomes.append(f"{leave >> 10} KiB free: no space")
                restored, _ = restore_state(directory, state)  # the previous one, disk full
                assert int(restored.step) == k - 1
                filler.unlink()
                save_state(directory, state.replace(step=k), max_to_keep=2)  # room again
            else:
                outcomes.append(f"{leave >> 10} KiB free: saved")
                filler.unlink()
            assert latest_step(directory) == k and _partials(directory) == []
    assert sum("no space" in o for o in outcomes) >= 4 and outcomes[-1].endswith("saved")
    figures("save_state with " + "; ".join(outcomes) + " (each failed one: previous restored)")


#: Free bytes left for preparing "coffee" (~280 KB on disk): failures at every stage of it.
PREPARE_LEVELS = (0, 8 << 10, 64 << 10, 160 << 10, 256 << 10)


def test_preparing_a_dataset_into_a_full_cache_says_no_space_and_keeps_nothing_half_written(
    small_disk, fill, figures
):
    reference = jd.load("coffee", "train")  # the session's cache, on a disk with room
    outcomes = []
    with small_disk("4m") as disk:
        root = disk / "cache"
        assert len(jd.load("iris", data_dir=root)) == 120  # prepared before the disk fills
        for leave in PREPARE_LEVELS:
            filler = fill(disk, leave)
            for _ in range(2):  # a second load, still full, must not find it prepared
                with pytest.raises(OSError) as err:
                    jd.load("coffee", data_dir=root)
                assert err.value.errno == errno.ENOSPC
                assert re.match(
                    rf"\[Errno 28\] No space left on device in {re.escape(str(root))} to "
                    r"prepare jdl dataset 'coffee' \(\w+",
                    str(err.value),
                ), str(err.value)
                assert not (root / "jdl_coffee" / "1.0.0").exists() and _leftovers(root) == []
            outcomes.append(f"{leave >> 10} KiB free: {str(err.value.__cause__)[:60]!r}")
            assert len(jd.load("iris", data_dir=root)) == 120  # the cache survives
            filler.unlink()
        source = jd.load("coffee", "train", data_dir=root)  # room again
        assert len(source) == len(reference) == 512
        for i in (0, 255, 511):
            assert all(np.array_equal(source[i][k], reference[i][k]) for k in ("x", "y"))
        assert [p.name for p in (root / "jdl_coffee").iterdir()] == ["1.0.0"]
    figures(
        "preparing coffee: " + "; ".join(outcomes) + " -> each 'No space left on device in "
        "<cache> to prepare ...', nothing half-written, iris kept; freed: prepared, identical"
    )
