"""ReduceLROnPlateau: reductions after `patience` epochs, the same training as a step
schedule with those boundaries, cooldown, min_lr, resume, and the errors."""

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import Checkpoint, ReduceLROnPlateau, learning_rate

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def _never_improves(**kw):
    # The training loss falls every epoch, so with mode="max" it never improves after the
    # first epoch: the reductions fall exactly `patience` epochs apart.
    return ReduceLROnPlateau("loss", mode="max", verbose=0, **kw)


def test_reduces_after_patience_epochs_and_trains_as_a_step_schedule(train_source):
    plateau = _never_improves(factor=0.1, patience=2)
    h = jdl.fit(
        TinyMLP(), train_source, optimizer=jdl.train.optimizer("sgd", 0.1), epochs=6,
        callbacks=[plateau], **KW,
    )  # fmt: skip
    # epoch 1 sets the best; epochs 2, 3 wait -> reduce after 3; 4, 5 wait -> after 5
    assert plateau.reductions == [(3, pytest.approx(0.01)), (5, pytest.approx(0.001))]
    assert h.metrics["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert float(learning_rate(h.state.opt_state)) == pytest.approx(0.001)
    # The same run with the learning rate scheduled at those steps: the same parameters.
    spe = len(train_source) // 32
    scheduled = jdl.train.optimizer(
        "sgd", 0.1, schedule="step", boundaries=[3 * spe, 5 * spe], decay=0.1
    )
    ref = jdl.fit(TinyMLP(), train_source, optimizer=scheduled, epochs=6, **KW)
    for a, b in zip(jax.tree.leaves(h.variables), jax.tree.leaves(ref.variables), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cooldown_min_lr_and_adam_in_a_chain(train_source, capsys):
    plateau = ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=1, cooldown=1,
                                min_lr=0.03)  # fmt: skip
    tx = jdl.train.optimizer("adam", 0.1, clip=1.0)  # a chain: clip, then injected adam
    h = jdl.fit(TinyMLP(), train_source, optimizer=tx, epochs=6, callbacks=[plateau], **KW)
    # e2 reduce (0.05); e3 cooldown; e4 reduce (max(0.025, 0.03) = 0.03); e5 cooldown;
    # e6 would reduce but the rate is at min_lr
    assert h.metrics["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.03, 0.03])
    assert [e for e, _ in plateau.reductions] == [2, 4]
    assert float(learning_rate(h.state.opt_state)) == pytest.approx(0.03)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out


def test_improving_metric_is_never_reduced(train_source, val_source):
    plateau = ReduceLROnPlateau("val_loss", patience=1, min_delta=0.0, verbose=0)
    h = jdl.fit(TinyMLP(), train_source, optimizer=("sgd", 0.05), epochs=3,
                validation=val_source, callbacks=[plateau], **KW)  # fmt: skip
    assert all(np.diff(h.metrics["val_loss"]) < 0)  # the premise
    assert plateau.reductions == [] and h.metrics["learning_rate"] == pytest.approx([0.05] * 3)


def test_resume_keeps_the_reduced_rate_and_the_counters(tmp_path, train_source):
    def run(epochs, resume):
        plateau = _never_improves(factor=0.1, patience=2)
        h = jdl.fit(TinyMLP(), train_source, optimizer=("sgd", 0.1), epochs=epochs,
                    callbacks=[Checkpoint(tmp_path), plateau], resume=resume, **KW)  # fmt: skip
        return h, plateau

    run(4, resume=False)  # reduced after epoch 3
    h, plateau = run(6, resume=True)
    assert plateau.reductions == [(5, pytest.approx(0.001))]  # the wait went on from epoch 4
    assert h.metrics["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])


def test_optimizer_without_an_injected_learning_rate_is_refused(train_source):
    with pytest.raises(ValueError, match=r"no learning rate.*jdl\.train\.optimizer"):
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1,
                callbacks=[ReduceLROnPlateau("loss")], **KW)  # fmt: skip
    scheduled = jdl.train.optimizer("adam", 0.1, schedule="cosine", total_steps=100)
    with pytest.raises(ValueError, match="is a schedule"):
        jdl.fit(TinyMLP(), train_source, optimizer=scheduled, epochs=1,
                callbacks=[ReduceLROnPlateau("loss")], **KW)  # fmt: skip


def test_bad_settings_and_missing_metric(train_source):
    with pytest.raises(ValueError, match="factor must be between 0 and 1"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="patience must be >= 0"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="mode must be"):
        ReduceLROnPlateau(mode="up")
    with pytest.raises(KeyError, match="pass validation data"):
        jdl.fit(TinyMLP(), train_source, optimizer=("sgd", 0.1), epochs=1,
                callbacks=[ReduceLROnPlateau("val_loss")], **KW)  # fmt: skip
