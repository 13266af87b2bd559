"""jdl.train.sweep(params=...): any shape-keeping hyper-parameter, traced in one program."""

from __future__ import annotations

import functools
import logging

import chex
import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def _assert_same_run(history, alone):
    chex.assert_trees_all_close(history.variables, alone.variables, rtol=1e-5, atol=1e-6)
    for name, values in alone.metrics.items():
        np.testing.assert_allclose(history.metrics[name], values, rtol=1e-5, atol=1e-6)


def adamw(learning_rate, weight_decay):
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def test_a_weight_decay_sweep_equals_one_fit_per_value(train_source, val_source):
    decays = [0.0, 0.3]
    result = jdl.train.sweep(
        TinyMLP(), train_source, optimizer=adamw, learning_rates=[0.02],
        params={"weight_decay": decays}, epochs=2, validation=val_source, **KW,
    )  # fmt: skip
    assert result.configs == [
        {"learning_rate": 0.02, "seed": 0, "init_scale": 1.0, "weight_decay": d} for d in decays
    ]
    for decay, history in zip(decays, result.histories, strict=True):
        alone = jdl.fit(
            TinyMLP(), train_source, optimizer=adamw(0.02, decay), epochs=2,
            validation=val_source, **KW,
        )  # fmt: skip
        _assert_same_run(history, alone)
    # The decay really acted: it shrank the weights.
    norms = [float(jdl.losses.l2(h.variables["params"])) for h in result.histories]
    assert norms[1] < 0.9 * norms[0], norms
    assert "weight_decay" in result.table(["loss"]).splitlines()[0]


def test_named_optimiser_hyper_parameters_form_a_product_with_learning_rates(train_source):
    result = jdl.train.sweep(
        TinyMLP(), train_source, optimizer="sgd", learning_rates=[0.05, 0.1],
        params={"momentum": [0.0, 0.9]}, steps=12, **KW,
    )  # fmt: skip
    grid = [(c["learning_rate"], c["momentum"]) for c in result.configs]
    assert grid == [(0.05, 0.0), (0.05, 0.9), (0.1, 0.0), (0.1, 0.9)]
    for (lr, momentum), history in zip(grid, result.histories, strict=True):
        tx = jdl.train.optimizer("sgd", lr, momentum=momentum)
        _assert_same_run(history, jdl.fit(TinyMLP(), train_source, optimizer=tx, steps=12, **KW))
    # Each history's state carries its own optimiser, built with its numbers.
    assert jdl.train.learning_rate(result[3].state.opt_state) == pytest.approx(0.1)
    assert len({round(float(v), 6) for v in result.final("loss")}) == 4


@pytest.mark.parametrize("loss", ["cross_entropy", "ce"])
def test_a_keyword_of_the_loss_is_swept_in_training_and_evaluation(train_source, val_source, loss):
    values = [0.0, 0.2]
    result = jdl.train.sweep(
        TinyMLP(), train_source, loss=loss, optimizer=("adam", 0.01),
        params={"label_smoothing": values}, epochs=2, validation=val_source,
        metrics=("accuracy",), batch_size=32, verbose=0,
    )  # fmt: skip
    for value, history in zip(values, result.histories, strict=True):
        alone = jdl.fit(
            TinyMLP(), train_source,
            loss=functools.partial(jdl.losses.cross_entropy, label_smoothing=value),
            optimizer=("adam", 0.01), epochs=2, validation=val_source, metrics=("accuracy",),
            batch_size=32, verbose=0,
        )  # fmt: skip
        _assert_same_run(history, alone)
    assert result.final("val_loss")[1] > result.final("val_loss")[0]  # smoothing costs loss


@pytest.mark.parametrize("decay", ["weight_decay", "coupled_weight_decay"])
def test_a_named_optimisers_weight_decay_is_swept(train_source, decay):
    values = [0.0, 0.5]
    result = jdl.train.sweep(
        TinyMLP(), train_source, optimizer="adam", learning_rates=[0.02],
        params={decay: values}, steps=12, **KW,
    )  # fmt: skip
    for value, history in zip(values, result.histories, strict=True):
        tx = jdl.train.optimizer("adam", 0.02, **{decay: value})
        _assert_same_run(history, jdl.fit(TinyMLP(), train_source, optimizer=tx, steps=12, **KW))
    norms = [float(jdl.losses.l2(h.variables["params"])) for h in result.histories]
    assert norms[1] < 0.95 * norms[0], norms  # the decay acted


def test_a_dropout_rate_is_swept_and_equals_one_fit_per_rate(train_source, val_source):
    rates = [0.0, 0.3, 0.6]
    model = jdl.nn.MLP(widths=(16,), num_outputs=3, dropout=0.1)
    result = jdl.train.sweep(
        model, train_source, optimizer="adam", learning_rates=[0.01],
        params={"dropout": rates}, epochs=2, validation=val_source, **KW,
    )  # fmt: skip
    for rate, history in zip(rates, result.histories, strict=True):
        alone = jdl.fit(
            model.clone(dropout=rate), train_source, optimizer=("adam", 0.01), epochs=2,
            validation=val_source, **KW,
        )  # fmt: skip
        _assert_same_run(history, alone)
    losses = result.final("loss")
    assert losses[0] < losses[1] < losses[2], losses  # more dropout, noisier training loss


class ScaledLogits(nn.Module):
    """TinyMLP whose logits are multiplied by a field: traceable arithmetic on it."""

    logit_scale: float = 1.0
    num_outputs: int = 3

    @nn.compact
    def __call__(self, x, *, train: bool):
        return self.logit_scale * TinyMLP(num_outputs=self.num_outputs)(x, train=train)


def test_a_model_field_is_swept_and_each_state_holds_its_model(train_source, caplog):
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        result = jdl.train.sweep(
            ScaledLogits(), train_source, optimizer="sgd", learning_rates=[0.1],
            params={"logit_scale": [0.5, 2.0]}, steps=10, **KW,
        )  # fmt: skip
    compiles = [m for m in caplog.messages if m.startswith("Compiling jit(train_all)")]
    assert len(compiles) == 1, compiles
    for scale, history in zip([0.5, 2.0], result.histories, strict=True):
        assert history.state.model.logit_scale == scale
        alone = jdl.fit(
            ScaledLogits(logit_scale=scale), train_source,
            optimizer=jdl.train.optimizer("sgd", 0.1), steps=10, **KW,
        )  # fmt: skip
        _assert_same_run(history, alone)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"widths": [(4,), (8,)]}, r"numbers only.*jdl\.train\.search"),
        ({"batch_size": [16, 32]}, r"changes the shape.*jdl\.train\.search"),
        ({"learning_rate": [0.1]}, r"learning_rates="),
        ({"b1": [0.9]}, r"cannot pass 'b1'.*unexpected keyword"),
        ({"momentum": []}, r"non-empty list"),
        # An int that sets a shape is a number, but a traced one cannot size a layer.
        ({"num_outputs": [3, 5]}, r"cannot trace 'num_outputs'.*jdl\.train\.search"),
        ({"l2": [0.0, 1e-3]}, r"one number for the whole sweep.*weight_decay"),
    ],
)
def test_what_cannot_be_traced_is_refused_before_training(train_source, params, match):
    model = jdl.nn.MLP(widths=(8,), num_outputs=3, dropout=0.1)
    with pytest.raises(ValueError, match=match):
        jdl.train.sweep(model, train_source, optimizer="sgd", learning_rates=[0.1],
                        params=params, steps=2, **KW)  # fmt: skip


def test_optimiser_hyper_parameters_need_an_optimiser_that_takes_them(train_source):
    with pytest.raises(ValueError, match=r"sweep the optimiser's \['momentum'\]"):
        jdl.train.sweep(TinyMLP(), train_source, optimizer=optax.sgd(0.1),
                        params={"momentum": [0.0, 0.9]}, steps=2, **KW)  # fmt: skip
    # A (name, learning_rate) pair takes them as keywords.
    result = jdl.train.sweep(TinyMLP(), train_source, optimizer=("sgd", 0.1),
                             params={"momentum": [0.9]}, steps=4, **KW)  # fmt: skip
    tx = jdl.train.optimizer("sgd", 0.1, momentum=0.9)
    alone = jdl.fit(TinyMLP(), train_source, optimizer=tx, steps=4, **KW)
    _assert_same_run(result[0], alone)
    assert result.configs == [{"seed": 0, "init_scale": 1.0, "momentum": 0.9}]
