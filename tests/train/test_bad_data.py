"""Bad data never trains silently: fit / evaluate / sweep refuse it at the boundary.

Every error names the dataset, what was expected (the model's output width, the range, the
dtype) and what was found, before anything compiles (jdl/train/data_checks.py).
"""

from __future__ import annotations

import functools
import logging

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


def _fit(model, train, loss="cross_entropy", **kw):
    return jdl.fit(model, train, optimizer=optax.sgd(0.1), epochs=1, loss=loss, **KW, **kw)


def _sweep(model, train, loss="cross_entropy"):
    return jdl.train.sweep(
        model, train, optimizer="sgd", learning_rates=[0.1, 0.2], loss=loss, epochs=1, **KW
    )


def _evaluate(model, train, loss="cross_entropy"):
    x = np.zeros((1, *np.shape(train[0])[1:]), np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    return jdl.evaluate(model, variables, train, loss=loss)


ENTRY_POINTS = {"fit": _fit, "sweep": _sweep, "evaluate": _evaluate}
NAMES = {"fit": "training", "sweep": "training", "evaluate": "data"}


def _passes(model, arrays, loss="cross_entropy"):
    """The checks fit runs, on valid data: no error (training itself is tested elsewhere)."""
    check_data(model, feed_lib._make_feed(jdl.data.from_arrays(*arrays)), loss, "training")


def _with(y, index, value):
    y = y.copy()
    y[index] = value
    return y


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_label_equal_to_num_outputs_is_refused(data, entry):
    x, y = data
    with pytest.raises(ValueError) as err:
        ENTRY_POINTS[entry](TinyMLP(num_outputs=3), (x, _with(y, 5, 3)))
    message = str(err.value)
    assert message.startswith(f"{NAMES[entry]} labels must be class indices in [0, 3)")
    assert "model with 3 outputs" in message  # the model's output width
    assert "found labels from 0 to 3" in message  # the range found
    assert "1 example(s) outside, the first at index 5" in message
    assert "num_outputs=4" in message  # the fix


def test_a_negative_label_is_refused(data):
    x, y = data
    with pytest.raises(ValueError, match=r"found labels from -1 to 2: 1 example\(s\) outside, "
                       r"the first at index 7\. Fix: negative labels"):  # fmt: skip
        _fit(TinyMLP(), (x, _with(y, 7, -1)))


@pytest.mark.parametrize(
    "loss", ["cross_entropy", functools.partial(jdl.losses.cross_entropy, label_smoothing=0.1)]
)
def test_a_model_with_too_few_outputs_for_the_labels_is_refused(data, loss):
    x, y = data  # labels 0..2, a model of 2 outputs
    with pytest.raises(ValueError, match=r"in \[0, 2\) for a model with 2 outputs.*from 0 to 2.*"
                       r"num_outputs=3 \(it has 2\)"):  # fmt: skip
        _fit(TinyMLP(num_outputs=2), (x, y), loss=loss)


def test_one_based_labels_are_named(data):
    x, y = data
    with pytest.raises(ValueError, match=r"look 1-based \(1 to 3\): subtract 1"):
        _fit(TinyMLP(), (x, y + 1))


def test_validation_labels_are_checked_too(data):
    x, y = data
    with pytest.raises(ValueError, match=r"^validation labels .*from 0 to 9"):
        _fit(TinyMLP(), (x, y), validation=(x, _with(y, 0, 9)))


@pytest.mark.parametrize("dtype", [np.float32, bool])
def test_cross_entropy_labels_must_be_integers(data, dtype):
    x, y = data
    with pytest.raises(ValueError) as err:
        _fit(TinyMLP(), (x, (y % 2).astype(dtype)))
    message = str(err.value)
    assert "must be integer class indices in [0, 3)" in message
    assert f"found {np.dtype(dtype)} labels" in message and "astype(np.int32)" in message


def test_one_hot_targets_must_have_one_column_per_output(data):
    x, y = data
    one_hot = np.eye(3, dtype=np.float32)[y]
    with pytest.raises(ValueError, match=r"targets of shape \(batch, 3\).*outputs of shape "
                       r"\(batch, 5\) under cross_entropy.*num_outputs=3"):  # fmt: skip
        _fit(TinyMLP(num_outputs=5), (x, one_hot))
    with pytest.raises(ValueError, match=r"cross_entropy must lie in \[0, 1\]; found values from "
                       r"-1\.0 to 1\.0"):  # fmt: skip
        _fit(TinyMLP(), (x, _with(one_hot, (2, 0), -1.0)))
    _passes(TinyMLP(), (x, one_hot))


def test_binary_cross_entropy_targets_must_lie_in_0_1(data):
    x, y = data
    with pytest.raises(ValueError, match=r"binary_cross_entropy must lie in \[0, 1\]; found values "
                       r"from 0 to 2.*loss='cross_entropy'"):  # fmt: skip
        _fit(TinyMLP(num_outputs=1), (x, y), loss="bce")
    _passes(TinyMLP(num_outputs=1), (x, y % 2), "bce")  # (batch, 1) logits, (batch,) labels


def test_regression_targets_that_would_broadcast_are_refused(data):
    x, y = data
    target = y.astype(np.float32)
    for entry in (_fit, _evaluate):
        with pytest.raises(ValueError, match=r"targets of shape \(batch,\) \(dtype float32\) do "
                           r"not fit the model's outputs of shape \(batch, 5\) under mse.*"
                           r"num_outputs=1"):  # fmt: skip
            entry(TinyMLP(num_outputs=5), (x, target), loss="mse")
    # a (batch, 1) head against (batch,) targets is jdl's one accepted mismatch (losses.mse)
    _passes(TinyMLP(num_outputs=1), (x, target), "mse")


@pytest.mark.parametrize("entry", ["fit", "evaluate"])
def test_non_finite_inputs_are_refused_with_count_and_first_index(data, entry):
    x, y = data
    x = _with(_with(x, (9, 0), np.inf), (3, 1), np.nan)
    with pytest.raises(ValueError, match=r"x holds NaN or inf in 2 of 64 examples, the first at "
                       r"index 3"):  # fmt: skip
        ENTRY_POINTS[entry](TinyMLP(), (x, y))


def test_non_finite_targets_are_refused(data):
    x, y = data
    target = _with(y.astype(np.float32), 11, np.nan)
    with pytest.raises(ValueError, match=r"^training y holds NaN or inf in 1 of 64 examples, "
                       r"the first at index 11"):  # fmt: skip
        _fit(TinyMLP(num_outputs=1), (x, target), loss="mse")


def test_string_inputs_are_refused_with_their_dtype(data):
    x, y = data
    with pytest.raises(TypeError, match=r"train=\(x, y\): x must be an array of numbers \(or "
                       r"bools\), got dtype <U3 \(strings\)"):  # fmt: skip
        _fit(TinyMLP(), (np.full((64, 5), "abc"), y))
    # a source of its own (not from_arrays) is checked where fit reads it
    listed = [{"x": np.full(5, "abc"), "y": np.int64(0)} for _ in range(32)]
    with pytest.raises(TypeError, match=r"inputs must be numeric arrays; got dtype <U3 "
                       r"\(strings\) for field 'x' of training"):  # fmt: skip
        _fit(TinyMLP(), listed)
    with pytest.raises(TypeError, match=r"got dtype datetime64\[D\] \(dates\)"):
        _fit(TinyMLP(), (x, np.zeros(64, "datetime64[D]")))


def test_a_streamed_source_has_its_first_batch_checked(data, monkeypatch):
    x, y = data
    monkeypatch.setattr(feed_lib, "_IN_MEMORY_BYTES", 0)  # every source streams
    listed = [{"x": x[i], "y": y[i]} for i in range(len(y))]
    listed[2] = {"x": x[2], "y": np.int64(7)}
    feed = feed_lib._make_feed(listed)
    assert feed is listed  # not loaded: read a batch at a time
    with pytest.raises(ValueError, match=r"from 0 to 7 of the first batch: 1 example\(s\) "
                       r"outside, the first at index 2"):  # fmt: skip
        check_data(TinyMLP(), feed, "cross_entropy", "training")


def test_evaluate_with_another_models_variables_lists_the_differences(data):
    x, y = data
    history = _fit(TinyMLP(num_outputs=5), (x, y))
    for variables in (history.variables, history.state, history):
        with pytest.raises(ValueError) as err:
            jdl.evaluate(TinyMLP(num_outputs=3), variables, (x, y))
        message = str(err.value)
        assert message.startswith("evaluate variables do not fit the model (2 problem(s))")
        assert "params/Dense_1/kernel: shape (16, 5) given, the model has (16, 3)" in message
        assert "params/Dense_1/bias: shape (5,) given, the model has (3,)" in message
    with pytest.raises(ValueError, match=r"missing batch_stats/BatchNorm_0/mean \(16,\)"):
        jdl.evaluate(TinyMLP(batch_norm=True), history.variables, (x, y))
    result = jdl.evaluate(TinyMLP(num_outputs=5), history.variables, (x, y))
    assert set(result) == {"loss", "accuracy"} and 0.0 <= result["accuracy"] <= 1.0


def test_valid_data_passes_without_compiling_anything(data, caplog):
    x, y = data
    source = jdl.data.from_arrays(x, y)
    feed = feed_lib._make_feed(source)
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        signature, output, variables = check_data(TinyMLP(), feed, "cross_entropy", "training")
    assert [m for m in caplog.messages if "Compiling" in m] == []
    assert signature == ((5,), np.float32)
    assert output.shape == (1, 3) and variables["params"]["Dense_1"]["kernel"].shape == (16, 3)
    # reused for a second dataset of the same per-example shape: no second abstract run
    known = (signature, output, variables)
    assert check_data(TinyMLP(), feed, "cross_entropy", "validation", known=known)[1] is output
