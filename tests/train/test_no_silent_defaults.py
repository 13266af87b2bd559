"""Losses, metrics and inputs that would give silently wrong numbers are refused (issue #18).

``cross_entropy`` (a softmax over the last axis) with a one-output model is always loss 0
and accuracy 1; the argmax metrics with one output always predict class 0; soft targets
that are not probability rows are not what ``cross_entropy`` or ``accuracy`` mean; and a
generator or a ``jdl.data.batches`` iterator is not a dataset ``fit`` can index. ``fit``,
``evaluate`` and ``sweep`` refuse each of them the same way, before anything compiles.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import feed as feed_lib
from jdl.train.data_checks import check_data

KW = dict(batch_size=16, verbose=0)


@pytest.fixture(scope="module")
def data():
    source = blobs(64)
    return source.x, source.y


def _variables(model, x):
    return model.init(jax.random.key(0), x[:1], train=False)


def _fit(model, train, loss="cross_entropy", **kw):
    return jdl.fit(model, train, optimizer=optax.sgd(0.1), epochs=1, loss=loss, **KW, **kw)


def _sweep(model, train, loss="cross_entropy", **kw):
    return jdl.train.sweep(
        model, train, optimizer="sgd", learning_rates=[0.1], loss=loss, epochs=1, **KW, **kw
    )


def _evaluate(model, train, loss="cross_entropy", **kw):
    x = train[0] if isinstance(train, tuple) else np.zeros((1, 5), np.float32)
    return jdl.evaluate(model, _variables(model, x), train, loss=loss, **kw)


ENTRY_POINTS = {"fit": _fit, "sweep": _sweep, "evaluate": _evaluate}


def _passes(model, arrays, loss, metrics=None):
    """The checks fit, evaluate and sweep run, on valid data: no error."""
    feed = feed_lib._make_feed(jdl.data.from_arrays(*arrays))
    check_data(model, feed, loss, "training", metrics=metrics)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("targets", ["labels", "regression"])
def test_cross_entropy_with_one_output_is_refused(entry, targets, data):
    x, y = data
    y = (y % 2) if targets == "labels" else x[:, :1].copy()
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](TinyMLP(num_outputs=1), (x, y))
    message = str(info.value)
    assert "loss='cross_entropy'" in message and "1 output" in message
    assert "loss='mse'" in message and "loss='binary_cross_entropy'" in message
    assert "num_outputs=2" in message


def test_evaluate_default_loss_on_a_regression_model_is_refused(data):
    x, _ = data
    model = TinyMLP(num_outputs=1)
    with pytest.raises(ValueError, match=r"loss='cross_entropy'.*1 output.*loss='mse'"):
        jdl.evaluate(model, _variables(model, x), (x, x[:, :1]))  # the default loss
    result = jdl.evaluate(model, _variables(model, x), (x, x[:, :1]), loss="mse")
    assert set(result) == {"loss"} and result["loss"] > 0


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_float_targets_that_are_not_labels_are_refused_for_cross_entropy(entry, data):
    x, _ = data  # regression values of shape (batch,): neither class labels nor probabilities
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](TinyMLP(), (x, x[:, 0]))
    message = str(info.value)
    assert "must be integer class indices in [0, 3)" in message and "float32" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("metric", ["accuracy", "f1", "top_k_accuracy"])
def test_argmax_metrics_with_one_output_are_refused(entry, metric, data):
    x, _ = data
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](TinyMLP(num_outputs=1), (x, x[:, :1]), loss="mse", metrics=[metric])
    message = str(info.value)
    assert f"the {metric!r} metric" in message and "1 output" in message
    assert "binary_accuracy" in message and "mae or rmse" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_accuracy_on_regression_targets_is_refused(entry, data):
    x, _ = data
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](TinyMLP(num_outputs=3), (x, x[:, :3]), loss="mse", metrics=["accuracy"])
    message = str(info.value)
    assert "'accuracy' metric must be class probabilities" in message
    assert "found values from" in message and "mae or rmse" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_multi_label_targets_for_cross_entropy_are_refused(entry, data):
    x, y = data
    multi = np.eye(3, dtype=np.float32)[y]
    multi[5, (y[5] + 1) % 3] = 1.0  # example 5 has two labels: its row sums to 2
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](TinyMLP(), (x, multi))
    message = str(info.value)
    assert "each row summing to 1" in message and "summing to 1 to 2" in message
    assert "first at index 5" in message and "binary_cross_entropy" in message


def test_what_fits_still_passes(data):
    x, y = data
    one_hot = np.eye(3, dtype=np.float32)[y]
    soft = 0.9 * one_hot + 0.1 / 3
    _passes(TinyMLP(), (x, y), "cross_entropy", ["accuracy", "f1", "top_k_accuracy"])
    _passes(TinyMLP(), (x, soft), "cross_entropy", ["accuracy"])
    _passes(TinyMLP(), (x, one_hot), "mse", ["accuracy"])  # a classifier trained with mse
    _passes(TinyMLP(num_outputs=1), (x, (y % 2)[:, None].astype(np.float32)), "bce",
            ["binary_accuracy"])  # fmt: skip
    _passes(TinyMLP(num_outputs=1), (x, x[:, :1]), "mse", ["mae", "rmse"])
    _passes(TinyMLP(num_outputs=3), (x, x[:, :3]), "mse", None)  # defaults: no accuracy


def _generator(x, y):
    for start in range(0, len(x), 16):
        yield {"x": x[start : start + 16], "y": y[start : start + 16]}


STREAMS = {
    "generator": (lambda x, y: _generator(x, y), "a generator", "the data it reads"),
    "batches": (
        lambda x, y: jdl.data.batches(jdl.data.from_arrays(x, y), 16),
        "a batch iterator",
        "the source you gave jdl.data.batches",
    ),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_streams_are_refused_saying_what_to_pass(entry, stream, data):
    make, said, instead = STREAMS[stream]
    with pytest.raises(TypeError) as info:
        ENTRY_POINTS[entry](TinyMLP(), make(*data))
    message = str(info.value)
    name = "data" if entry == "evaluate" else "train"
    assert message.startswith(f"{name} must be a random-access data source (len() and [i])")
    assert said in message and f"Pass {instead}" in message
    assert "jdl.data.load(name, split)" in message and "jdl.data.from_arrays(x, y)" in message
    assert "(x, y) arrays" in message and "in_memory=False" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_dict_of_arrays_is_refused_naming_the_fix(entry, data):
    x, y = data
    with pytest.raises(TypeError) as info:
        ENTRY_POINTS[entry](TinyMLP(), {"x": x, "y": y})
    message = str(info.value)
    name = "data" if entry == "evaluate" else "train"
    assert "got a dict with keys ['x', 'y']" in message
    assert f"jdl.data.from_arrays({name}['x'], {name}['y'])" in message


def test_validation_gets_the_metric_checks_too(data):
    x, y = data
    with pytest.raises(ValueError, match=r"validation targets .*'accuracy' metric"):
        _fit(TinyMLP(), (x, np.eye(3, dtype=np.float32)[y]), loss="mse", metrics=["accuracy"],
             validation=(x, np.eye(3, dtype=np.float32)[y] * 2))  # fmt: skip
