"""jdl.train.sweep: K configurations in one vmapped program, equal to K separate runs."""

from __future__ import annotations

import logging
import time

import chex
import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train.sweeps import _scale_kernels

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def _fit(model, source, lr, seed, **kw):
    return jdl.fit(model, source, optimizer=optax.sgd(lr, momentum=0.9), seed=seed, **KW, **kw)


def test_each_configuration_equals_its_own_fit(train_source, val_source):
    model = TinyMLP(batch_norm=True, dropout=0.1)
    lrs = [0.01, 0.5]
    result = jdl.train.sweep(
        model,
        train_source,
        optimizer=lambda lr: optax.sgd(lr, momentum=0.9),
        learning_rates=lrs,
        epochs=2,
        validation=val_source,
        **KW,
    )
    assert [c["learning_rate"] for c in result.configs] == lrs
    assert len(result) == 2
    for lr, history in zip(lrs, result.histories, strict=True):
        alone = _fit(model, train_source, lr, 0, epochs=2, validation=val_source)
        chex.assert_trees_all_close(history.variables, alone.variables, rtol=1e-5, atol=1e-6)
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(
                history.metrics[name], alone.metrics[name], rtol=1e-5, atol=1e-6
            )
        assert history.epochs == [1, 2] and history.steps == [8, 16]
    # Different learning rates really trained differently.
    assert result.final("loss")[0] > result.final("loss")[1]


def test_seed_configurations_match_fit_with_that_seed(train_source):
    result = jdl.train.sweep(
        TinyMLP(), train_source, optimizer="sgd", learning_rates=[0.1], seeds=[0, 1], steps=10,
        data_seed=1, **KW,
    )  # fmt: skip
    assert [c["seed"] for c in result.configs] == [0, 1]
    alone = jdl.fit(
        TinyMLP(), train_source, optimizer=jdl.train.optimizer("sgd", 0.1), steps=10, seed=1, **KW
    )
    chex.assert_trees_all_close(result[1].variables, alone.variables, rtol=1e-5, atol=1e-6)
    a, b = (jax.tree_util.tree_leaves(h.variables) for h in result.histories)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_init_scales_multiply_the_initial_kernels_only(train_source):
    model = TinyMLP(batch_norm=True)
    sample = train_source[0:1]
    state = jdl.train.create_state(model, optax.sgd(0.0), sample, 0)
    scaled = _scale_kernels(state.params, 3.0)
    assert np.allclose(scaled["Dense_0"]["kernel"], 3.0 * state.params["Dense_0"]["kernel"])
    assert np.array_equal(scaled["BatchNorm_0"]["scale"], state.params["BatchNorm_0"]["scale"])
    # With a zero learning rate nothing moves, so the final kernels show the scale.
    result = jdl.train.sweep(
        model, train_source, optimizer=optax.sgd(0.0), init_scales=[0.5, 2.0], steps=2, **KW
    )
    assert [c["init_scale"] for c in result.configs] == [0.5, 2.0]
    k0 = state.params["Dense_1"]["kernel"]
    np.testing.assert_allclose(result[0].variables["params"]["Dense_1"]["kernel"], 0.5 * k0)
    np.testing.assert_allclose(result[1].variables["params"]["Dense_1"]["kernel"], 2.0 * k0)


def test_a_diverging_configuration_does_not_disturb_the_others(train_source):
    result = jdl.train.sweep(
        TinyMLP(), train_source, optimizer="sgd", learning_rates=[0.1, 1e9], epochs=2, **KW
    )
    assert np.isfinite(result.final("loss")[0]) and not np.isfinite(result.final("loss")[1])
    config, history = result.best("loss")
    assert config["learning_rate"] == 0.1 and history is result[0]
    alone = jdl.fit(TinyMLP(), train_source, optimizer=jdl.train.optimizer("sgd", 0.1), epochs=2,
                    **KW)  # fmt: skip
    chex.assert_trees_all_close(result[0].variables, alone.variables, rtol=1e-5, atol=1e-6)
    table = result.table(["loss", "accuracy"])
    assert "learning_rate" in table and len(table.splitlines()) == 4


def test_one_compilation_for_the_whole_sweep(train_source, val_source, caplog):
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        jdl.train.sweep(
            TinyMLP(batch_norm=True), train_source, optimizer="adam",
            learning_rates=[1e-3, 1e-2], seeds=[0, 1], epochs=3, validation=val_source, **KW,
        )  # fmt: skip
    compiles = [m for m in caplog.messages if m.startswith("Compiling jit(train_all)")]
    assert len(compiles) == 1, compiles


def test_sweep_is_faster_than_sequential_fits():
    source = blobs(1024, seed=0, features=20)
    lrs = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    kw = dict(epochs=2, **KW)
    jdl.train.sweep(TinyMLP(), source, optimizer="sgd", learning_rates=lrs[:2], epochs=1, **KW)
    t0 = time.perf_counter()
    for lr in lrs:
        jdl.fit(TinyMLP(), source, optimizer=jdl.train.optimizer("sgd", lr), **kw)
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    jdl.train.sweep(TinyMLP(), source, optimizer="sgd", learning_rates=lrs, **kw)
    vmapped = time.perf_counter() - t0
    assert vmapped < sequential, (vmapped, sequential)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(optimizer="sgd", learning_rates=[]), "learning_rates must not be empty"),
        (dict(optimizer="sgd", learning_rates=[-1.0]), "positive"),
        (dict(optimizer=lambda lr: optax.sgd(lr)), "needs `learning_rates`"),
        (dict(optimizer=optax.sgd(0.1), learning_rates=[0.1]), "pass `optimizer` as a name"),
        (dict(optimizer="sgd", learning_rates=[0.1], seeds=[]), "seeds must not be empty"),
        (dict(optimizer="nope", learning_rates=[0.1]), "Unknown optimizer"),
    ],
)
def test_bad_settings_raise_clear_errors(train_source, kwargs, match):
    with pytest.raises(ValueError, match=match):
        jdl.train.sweep(TinyMLP(), train_source, steps=2, **KW, **kwargs)


def test_result_reports_unknown_metrics(train_source):
    result = jdl.train.sweep(TinyMLP(), train_source, optimizer="sgd", learning_rates=[0.1],
                             steps=2, **KW)  # fmt: skip
    with pytest.raises(KeyError, match="recorded"):
        result.final("val_accuracy")
    fig = result.plot("loss")
    assert fig.axes[0].get_title() == "sweep: loss"
