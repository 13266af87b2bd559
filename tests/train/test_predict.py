"""jdl.train.predict: every example's output once, in order, batched as evaluate batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TinyMLP, blobs, compiles

import jdl
from jdl.train import predict


@pytest.fixture(scope="module")
def trained():
    source = blobs(37)  # 37 examples: batches of 16 leave a padded last one
    model = TinyMLP(batch_norm=True, dropout=0.5)
    history = jdl.fit(model, source, batch_size=8, epochs=2, optimizer=("adam", 1e-2),
                      loss="cross_entropy", verbose=0)  # fmt: skip
    return model, history, source


def test_equals_the_model_applied_to_everything_in_inference_mode(trained):
    model, history, source = trained
    want = model.apply(history.variables, source.x, train=False)  # running BN stats, no dropout
    got = predict(model, history.variables, source.x, batch_size=16)
    assert isinstance(got, np.ndarray) and got.shape == (37, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_takes_arrays_tuples_sources_and_states(trained):
    model, history, source = trained
    ref = predict(model, history.variables, source.x)
    for data in ((source.x, source.y), source, jdl.data.from_arrays(source.x, source.y)):
        got = predict(model, history.variables, data, batch_size=5)  # other batch shapes:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)  # float rounding only
    np.testing.assert_array_equal(predict(model, history.state, source.x), ref)


def test_a_list_of_example_dicts_is_a_source(trained):
    model, history, source = trained
    examples = [{"x": source.x[i]} for i in range(len(source.x))]
    np.testing.assert_allclose(
        predict(model, history.variables, examples, batch_size=10),
        predict(model, history.variables, source.x), rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_one_compilation_for_every_batch(trained):
    model, history, source = trained
    # 6 batches, the last padded, then 5 batches of the same shape: compiled once.
    assert compiles(predict, model, history.variables, source.x, batch_size=7) >= 1
    assert compiles(predict, model, history.variables, source.x[:30], batch_size=7) == 0


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (np.array([["a", "b"]] * 4), TypeError, "numeric"),
        (np.full((4, 5), np.nan, np.float32), ValueError, "NaN or inf"),
        (np.zeros((4, 7), np.float32), ValueError, "do not fit the model"),
        ((x for x in range(3)), TypeError, "generator"),
        ([{"y": 1}], TypeError, 'dicts with "x"'),
        (np.zeros((0, 5), np.float32), ValueError, "axis 0"),
    ],
)
def test_bad_data_is_named(trained, data, error, words):
    model, history, _ = trained
    with pytest.raises(error, match=words):
        predict(model, history.variables, data)


def test_variables_of_another_model_are_refused(trained):
    model, history, source = trained
    with pytest.raises(ValueError, match="predict variables"):
        predict(TinyMLP(num_outputs=5), history.variables, source.x)
    # A TrainState runs its own model: one of another model is refused, as evaluate does.
    with pytest.raises(ValueError, match="predict got a TrainState of another model"):
        predict(TinyMLP(batch_norm=True, dropout=0.25), history.state, source.x)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, history.variables, source.x, batch_size=0)
