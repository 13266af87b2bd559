"""The analyses take jdl.data.from_arrays sources (and (x, y) pairs) like dict batches."""

import jax
import numpy as np
import optax
import pytest

import jdl
from jdl.nn import MLP

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int32)
MODEL = MLP(widths=(8,), num_outputs=2)
VARIABLES = MODEL.init(jax.random.key(0), X[:1], train=False)


def test_a_source_is_a_batch_for_the_per_layer_analyses():
    source = jdl.data.from_arrays(X, Y)
    by_source = jdl.analysis.gradient_norms(MODEL, VARIABLES, source, "cross_entropy")
    by_dict = jdl.analysis.gradient_norms(MODEL, VARIABLES, {"x": X, "y": Y}, "cross_entropy")
    assert by_source == by_dict and list(by_source) == ["Dense_0", "head"]


def test_training_analyses_take_sources_and_pairs():
    runs = [
        jdl.analysis.scan_fit(MODEL, data, "cross_entropy", optimizer=optax.adam(1e-2), steps=5)
        for data in (jdl.data.from_arrays(X, Y), (X, Y), {"x": X, "y": Y})
    ]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.losses, runs[0].losses)
    with pytest.raises(ValueError, match=r"data=\(x, y\): x and y must hold the same number"):
        jdl.analysis.scan_fit(MODEL, (X, Y[:3]), "cross_entropy", optimizer=optax.sgd(0.1), steps=2)
