"""fit(..., resume=True) continues exactly the run it was asked to (issue #19): callback
states, runs extended mid-epoch, refused settings, a missing checkpoint, NaN states."""

from __future__ import annotations

import math
import types

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import Checkpoint, History, ReduceLROnPlateau, callbacks, latest_step
from jdl.train.callbacks import BestCheckpoint, EarlyStopping
from jdl.train.checkpoint import restore_state
from jdl.train.resume import ResumeMismatchError, callback_states, load_callback_states

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def _same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _epochs(stopper, values):
    """Feed ``values`` (one per epoch) to ``stopper``; the epoch it stops after, if any."""
    run = types.SimpleNamespace(epoch=0, stop_training=False, stop_reason=None)
    run.stop = lambda reason: setattr(run, "stop_training", True)
    stopper.on_train_begin(run)
    for epoch, value in enumerate(values, 1):
        run.epoch = epoch
        stopper.on_epoch_end(run, {"val_loss": value})
        if run.stop_training:
            return epoch
    return None


def test_early_stopping_counts_patience_as_keras():
    # Best at epoch 2; Keras stops after `patience` epochs without improvement.
    values = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert _epochs(EarlyStopping(patience=2), values) == 4
    assert _epochs(EarlyStopping(patience=1), values) == 3
    assert _epochs(EarlyStopping(patience=0), values) == 3  # as patience=1, as in Keras
    # min_delta: an improvement must beat the best by more than it.
    assert _epochs(EarlyStopping(patience=1, min_delta=0.2), [1.0, 0.85, 0.5, 0.45]) == 2
    assert _epochs(EarlyStopping(patience=2, min_delta=0.2), [1.0, 0.85, 0.5, 0.45, 0.4]) == 5


def test_resumed_early_stopping_stops_where_the_uninterrupted_run_stops(
    tmp_path, train_source, val_source
):
    kw = dict(optimizer=optax.adam(0.05), validation=val_source, **KW)

    def stopper():
        return EarlyStopping(patience=2, restore_best=True)

    def run(epochs, *cbs, resume=False):
        return jdl.fit(TinyMLP(), train_source, epochs=epochs, callbacks=cbs, resume=resume, **kw)

    full = run(40, stopper())
    assert full.epochs[-1] == 6 and full.best("val_loss")[0] == 4  # the premise
    # "Crash" after epoch 5 (best at 4, one epoch waited), then resume with fresh callbacks.
    run(5, Checkpoint(tmp_path), stopper())
    fresh = stopper()
    resumed = run(40, Checkpoint(tmp_path), fresh, resume=True)
    assert resumed.epochs == full.epochs and resumed.stop_reason == full.stop_reason
    assert (fresh.best_epoch, fresh.wait) == (4, 2)
    assert resumed.metrics == full.metrics
    assert _same(resumed.variables, full.variables)  # epoch 4's, kept in the checkpoint
    # The same command again: the run stays stopped (nothing trained, a warning says so).
    with pytest.warns(UserWarning, match="was stopped at epoch 6"):
        again = run(40, Checkpoint(tmp_path), stopper(), resume=True)
    assert again.steps == full.steps and _same(again.variables, full.variables)


def test_callback_states_round_trip_through_json():
    stopper, plateau = EarlyStopping(), ReduceLROnPlateau(verbose=0)
    best, second = BestCheckpoint("unused", min_delta=0.1), BestCheckpoint("unused2", "loss")
    cbs = [callbacks.TerminateOnNaN(), stopper, plateau, best, second]
    stopper.on_train_begin(None)
    stopper.best, stopper.best_epoch, stopper.wait = 0.25, 3, 1
    plateau.best, plateau.wait, plateau.cooldown_counter = 0.5, 2, 1
    best.best, best.best_epoch = 1.0, 1  # by min_delta, not the history's minimum
    states = callback_states(cbs)
    assert set(states) == {"EarlyStopping", "ReduceLROnPlateau", "BestCheckpoint",
                           "BestCheckpoint#2"}  # fmt: skip
    assert states["BestCheckpoint#2"] == {"best": "inf", "best_epoch": None}  # strict JSON
    fresh = [callbacks.TerminateOnNaN(), EarlyStopping(), ReduceLROnPlateau(verbose=0)]
    fresh += [BestCheckpoint("unused", min_delta=0.1), BestCheckpoint("unused2", "loss")]
    load_callback_states(fresh, states)
    assert (fresh[1].best, fresh[1].best_epoch, fresh[1].wait) == (0.25, 3, 1)
    assert (fresh[2].best, fresh[2].wait, fresh[2].cooldown_counter) == (0.5, 2, 1)
    assert (fresh[3].best, fresh[3].best_epoch) == (1.0, 1)
    assert fresh[4].best == math.inf and fresh[4].best_epoch is None


def test_extending_steps_continues_the_partial_epoch_exactly(tmp_path, train_source, val_source):
    kw = dict(optimizer=optax.adam(0.05), validation=val_source, log_every=3, **KW)
    model = TinyMLP(dropout=0.2)
    full = jdl.fit(model, train_source, steps=20, **kw)
    first = jdl.fit(model, train_source, steps=12, callbacks=[Checkpoint(tmp_path)], **kw)
    assert first.steps == [8, 12]  # stopped 4 steps into epoch 2
    resumed = jdl.fit(model, train_source, steps=20, callbacks=[Checkpoint(tmp_path)],
                      resume=True, **kw)  # fmt: skip
    assert resumed.steps == full.steps == [8, 16, 20]  # not [8, 12, 20]
    assert resumed.epochs == [1, 2, 3]
    assert resumed.metrics == full.metrics  # epoch 2's means over all 8 of its steps
    assert _same(resumed.variables, full.variables)  # the same batches, in the same order
    assert latest_step(tmp_path) == 20


def test_resume_with_other_settings_is_refused_naming_them(tmp_path, train_source):
    kw = dict(KW, optimizer=("adam", 0.01))
    jdl.fit(TinyMLP(), train_source, epochs=1, callbacks=[Checkpoint(tmp_path)], **kw)
    resume = dict(callbacks=[Checkpoint(tmp_path)], resume=True)
    with pytest.raises(ResumeMismatchError, match=r"learning_rate': 0.01\}; this run asks for "
                       r"optimizer_hyperparams=\{'learning_rate': 0.1\}"):  # fmt: skip
        jdl.fit(TinyMLP(), train_source, epochs=2, **{**kw, "optimizer": ("adam", 0.1)}, **resume)
    with pytest.raises(ResumeMismatchError, match=r"batch_size=32, seed=0; this run asks for "
                       r"batch_size=64, seed=1\. .*another Checkpoint directory"):  # fmt: skip
        jdl.fit(TinyMLP(), train_source, epochs=2, **{**kw, "batch_size": 64}, seed=1, **resume)
    with pytest.raises(
        ResumeMismatchError,
        match=r"model=.TinyMLP\(num_outputs=3, batch_norm=False, dropout=0\.0, .*"
        r"this run asks for model=.*dropout=0\.5",
    ):
        jdl.fit(TinyMLP(dropout=0.5), train_source, epochs=2, **kw, **resume)
    with pytest.raises(ResumeMismatchError, match="at step 8, past this run's length of 4"):
        jdl.fit(TinyMLP(), train_source, steps=4, **kw, **resume)
    assert latest_step(tmp_path) == 8  # nothing written by the refused runs


def test_resume_without_a_checkpoint_warns_and_starts_from_scratch(tmp_path, train_source):
    kw = dict(KW, optimizer=optax.sgd(0.1), steps=2, resume=True)
    with pytest.warns(UserWarning, match=f"directory {tmp_path / 'none'} does not exist"):
        h = jdl.fit(TinyMLP(), train_source, callbacks=[Checkpoint(tmp_path / "none")], **kw)
    assert h.steps == [2]
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="empty holds no checkpoint; training starts from"):
        jdl.fit(TinyMLP(), train_source, callbacks=[Checkpoint(tmp_path / "empty")], **kw)


def test_a_state_with_nan_parameters_is_never_checkpointed(tmp_path):
    state = jdl.train.create_state(TinyMLP(), optax.sgd(0.1), np.zeros((1, 5), np.float32), 0)
    run = types.SimpleNamespace(state=state.replace(step=3), history=History(), epoch=1, step=3)
    Checkpoint(tmp_path).save(run)
    params = jax.tree.map(lambda p: p.at[0].set(np.nan), state.params)
    run = types.SimpleNamespace(
        state=state.replace(step=5, params=params), history=History(), epoch=2, step=5
    )
    callback = Checkpoint(tmp_path)
    with pytest.warns(UserWarning, match=r"not saving step 5 .*params/Dense_0/bias.*"
                      r"NaN or inf.*step 3 is kept"):  # fmt: skip
        callback.on_epoch_recorded(run)
    callback.on_train_end(run)  # no second save attempt, no second warning
    assert latest_step(tmp_path) == 3
    restored, _ = restore_state(tmp_path, state)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(restored.params))


def test_extra_states_are_saved_in_the_same_checkpoint(tmp_path):
    like = jdl.train.create_state(TinyMLP(), optax.adam(0.1), np.zeros((1, 5), np.float32), 0)
    best = jdl.train.create_state(TinyMLP(), optax.adam(0.1), np.zeros((1, 5), np.float32), 1)
    jdl.train.save_state(tmp_path, like.replace(step=4), extra={"EarlyStopping": best})
    state, meta = restore_state(tmp_path, like, extra=["EarlyStopping", "Other"])
    assert int(state.step) == 4 and set(meta["extra"]) == {"EarlyStopping"}
    assert _same(meta["extra"]["EarlyStopping"].params, best.params)
    assert "extra" not in restore_state(tmp_path, like)[1]  # only when asked for
    jdl.train.save_state(tmp_path, like.replace(step=5))  # none saved: none restored
    assert restore_state(tmp_path, like, extra=["EarlyStopping"])[1]["extra"] == {}
