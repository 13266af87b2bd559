"""A batch's "lengths" reach models that take them, in fit, evaluate and the steps."""

import jax
import numpy as np
import optax
import pytest

import jdl
from jdl.nn import MLP, RNNClassifier


def _padded(pad_value: float, n: int = 32, time: int = 12, seed: int = 0) -> list[dict]:
    """Sequences of 4..12 valid steps; everything after ``lengths`` is ``pad_value``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, time + 1, size=n)
    x = rng.normal(size=(n, time, 3)).astype(np.float32)
    x[np.arange(time)[None, :] >= lengths[:, None]] = pad_value
    y = (x[np.arange(n), 0, 0] > 0).astype(np.int32)
    return [{"x": x[i], "y": y[i], "lengths": np.int32(lengths[i])} for i in range(n)]


KW = dict(batch_size=8, loss="cross_entropy", verbose=0, shuffle=False)


def test_fit_and_evaluate_never_read_the_padding():
    model = RNNClassifier(num_outputs=2, cell="gru", hidden_size=5)
    zeros, garbage = _padded(0.0), _padded(100.0)
    a = jdl.fit(model, zeros, optimizer=optax.adam(1e-2), steps=8, **KW)
    b = jdl.fit(model, garbage, optimizer=optax.adam(1e-2), steps=8, **KW)
    for p, q in zip(
        jax.tree_util.tree_leaves(a.variables), jax.tree_util.tree_leaves(b.variables), strict=True
    ):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-5)
    on_zeros = jdl.evaluate(model, a.variables, zeros)
    assert jdl.evaluate(model, a.variables, garbage) == pytest.approx(on_zeros, rel=1e-5)
    # Without "lengths" the same model reads the padding, and the numbers change.
    unlengthed = [{"x": e["x"], "y": e["y"]} for e in garbage]
    assert jdl.evaluate(model, a.variables, unlengthed)["loss"] != pytest.approx(
        on_zeros["loss"], rel=1e-3
    )


def test_lengths_for_a_model_that_takes_none_is_refused():
    data = [{"x": e["x"].reshape(-1), "y": e["y"], "lengths": e["lengths"]} for e in _padded(0.0)]
    with pytest.raises(ValueError, match="'lengths'.*MLP.*takes no `lengths`"):
        jdl.fit(MLP(widths=(4,), num_outputs=2), data, optimizer=optax.sgd(0.1), steps=1, **KW)


def test_sweep_never_reads_the_padding():
    model = RNNClassifier(num_outputs=2, cell="gru", hidden_size=5)
    kw = dict(batch_size=8, loss="cross_entropy", verbose=0, shuffle=False, steps=6)
    kw.update(optimizer="adam", learning_rates=[1e-2, 3e-2])
    a = jdl.train.sweep(model, _padded(0.0), **kw)
    b = jdl.train.sweep(model, _padded(100.0), **kw)
    for ha, hb in zip(a.histories, b.histories, strict=True):
        np.testing.assert_allclose(ha.metrics["loss"], hb.metrics["loss"], rtol=1e-5)
    unlengthed = [{"x": e["x"], "y": e["y"]} for e in _padded(100.0)]
    c = jdl.train.sweep(model, unlengthed, **kw)
    assert not np.allclose(c.histories[0].metrics["loss"], a.histories[0].metrics["loss"])
