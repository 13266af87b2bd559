"""fit / evaluate / sweep take (x, y) tuples of arrays as Keras does, as from_arrays sources."""

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def test_fit_and_evaluate_take_x_y_tuples(train_source, val_source):
    train, val = (train_source.x, train_source.y), (val_source.x, val_source.y)
    by_tuple = jdl.fit(TinyMLP(), train, optimizer=optax.sgd(0.1), epochs=2, validation=val, **KW)
    by_source = jdl.fit(
        TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=2, validation=val_source, **KW
    )
    assert by_tuple.metrics == by_source.metrics
    assert by_tuple.metrics["val_accuracy"][-1] > 0.8
    got = jdl.evaluate(TinyMLP(), by_tuple.variables, val)
    assert got == jdl.evaluate(TinyMLP(), by_tuple.variables, val_source)
    assert got["loss"] == pytest.approx(by_tuple.metrics["val_loss"][-1], rel=1e-6)


def test_sweep_takes_x_y_tuples(train_source):
    result = jdl.train.sweep(
        TinyMLP(), (train_source.x, train_source.y), optimizer="sgd", learning_rates=[0.1],
        steps=4, **KW,
    )  # fmt: skip
    assert result[0].steps == [4]


def test_bad_tuples_are_reported_at_the_boundary(train_source):
    x, y = train_source.x, train_source.y
    with pytest.raises(ValueError, match=r"train=\(x, y\): x and y must hold the same number"):
        jdl.fit(TinyMLP(), (x, y[:-1]), optimizer=optax.sgd(0.1), epochs=1, **KW)
    with pytest.raises(ValueError, match=r"validation=\(x, y\): x must have a leading axis"):
        jdl.fit(
            TinyMLP(), (x, y), optimizer=optax.sgd(0.1), epochs=1, validation=(x[0, 0], y), **KW
        )
    with pytest.raises(TypeError, match=r"data=\(x, y\): x must be a NumPy or JAX array"):
        jdl.evaluate(TinyMLP(), {"params": {}}, (x.tolist(), y))
    with pytest.raises(TypeError, match="train must be a random-access data source"):
        jdl.fit(TinyMLP(), iter([]), optimizer=optax.sgd(0.1), epochs=1, **KW)
    with pytest.raises(ValueError, match="epochs must be a positive integer; got True"):
        jdl.fit(TinyMLP(), (x, y), optimizer=optax.sgd(0.1), epochs=True, **KW)


def test_fit_reads_a_from_arrays_source_without_copying(train_source, monkeypatch):
    # The feed indexes the source's own arrays: nothing reads it example by example.
    def no_reads(*args):
        raise AssertionError("read example by example")

    monkeypatch.setattr(jdl.data.ArraySource, "__getitems__", no_reads)
    h = jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1, **KW)
    assert h.steps == [len(train_source.x) // 32]
    assert np.all(np.isfinite(h.metrics["loss"]))


def test_fit_accumulates_gradients_with_optax_multisteps(train_source):
    # Four steps of 8 examples with MultiSteps(every 4) = one step on the same 32 examples.
    x, y = train_source.x[:32], train_source.y[:32]
    common = dict(loss="cross_entropy", verbose=0, shuffle=False, seed=3)
    accumulated = jdl.fit(
        TinyMLP(),
        (x, y),
        batch_size=8,
        steps=4,
        optimizer=optax.MultiSteps(optax.sgd(0.5), every_k_schedule=4),
        **common,
    )
    large = jdl.fit(TinyMLP(), (x, y), batch_size=32, steps=1, optimizer=optax.sgd(0.5), **common)
    a = jax.tree_util.tree_leaves(accumulated.variables)
    b = jax.tree_util.tree_leaves(large.variables)
    for p, q in zip(a, b, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    moved = jdl.fit(TinyMLP(), (x, y), batch_size=32, steps=1, optimizer=optax.sgd(0.0), **common)
    assert not np.allclose(a[0], jax.tree_util.tree_leaves(moved.variables)[0])
