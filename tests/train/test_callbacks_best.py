"""BestCheckpoint: the best epoch's state is what is kept, apart from the latest."""

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import BestCheckpoint, Checkpoint, callbacks, latest_step

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


class _Snapshots(callbacks.Callback):
    """Copies of the variables at the end of every epoch."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, run, logs):
        self.by_epoch[run.epoch] = jax.tree.map(np.array, run.state.variables)


def _fit(train, val, cbs, epochs=8, **kw):
    # A large learning rate makes the validation loss go up and down: the best epoch is
    # neither the first nor the last.
    return jdl.fit(TinyMLP(), train, optimizer=optax.sgd(1.5), epochs=epochs,
                   validation=val, callbacks=cbs, **KW, **kw)  # fmt: skip


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_best_epochs_variables_are_kept(tmp_path, train_source, val_source):
    best, snaps = BestCheckpoint(tmp_path / "best", monitor="val_loss"), _Snapshots()
    h = _fit(train_source, val_source, [snaps, best])
    epoch, value = h.best("val_loss")
    assert epoch != len(h.epochs)  # the premise: the last epoch is not the best
    assert (best.best_epoch, best.best) == (epoch, value)
    state, meta = best.restore(h.state)
    assert (meta["epoch"], meta["monitor"], meta["value"]) == (epoch, "val_loss", value)
    assert meta["history"]["epochs"] == list(range(1, epoch + 1))
    _assert_same(state.variables, snaps.by_epoch[epoch])
    assert jdl.evaluate(TinyMLP(), state, val_source)["loss"] == pytest.approx(value, rel=1e-5)
    assert [p.name for p in (tmp_path / "best").iterdir() if p.name.isdigit()] == [
        str(h.steps[epoch - 1])
    ]  # one checkpoint only


def test_max_mode_and_resume_keep_the_best_apart_from_the_latest(
    tmp_path, train_source, val_source
):
    def run(epochs, resume):
        best = BestCheckpoint(tmp_path / "best", monitor="val_accuracy", min_delta=1e-9)
        snaps = _Snapshots()
        cbs = [Checkpoint(tmp_path / "latest"), snaps, best]
        return _fit(train_source, val_source, cbs, epochs=epochs, resume=resume), best, snaps

    first, best, snaps = run(4, resume=False)
    resumed, best2, snaps2 = run(8, resume=True)
    assert latest_step(tmp_path / "latest") == resumed.steps[-1]  # resume went on from the latest
    assert resumed.epochs == list(range(1, 9))
    # the best over all 8 epochs (the first to reach it), whichever run saved it
    values = resumed.metrics["val_accuracy"]
    epoch, value = int(np.argmax(values)) + 1, max(values)
    assert resumed.best("val_accuracy") == (epoch, value)
    assert best2.best_epoch == epoch and best2.best == value
    state, meta = best2.restore(resumed.state)
    assert meta["epoch"] == epoch
    _assert_same(state.variables, (snaps if epoch <= 4 else snaps2).by_epoch[epoch])


def test_missing_metric_and_nothing_saved(tmp_path, train_source):
    best = BestCheckpoint(tmp_path / "best", monitor="val_loss")
    with pytest.raises(KeyError, match="pass validation data"):
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1,
                callbacks=[best], **KW)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="No best checkpoint"):
        BestCheckpoint(tmp_path / "none").restore(None)
