"""A batch's "lengths" reach the analyses too: padding that would change every number if
read leaves them unchanged, and a model that takes no lengths is refused."""

import jax
import numpy as np
import optax
import pytest

import jdl
from jdl import analysis
from jdl.nn import MLP, RNNClassifier


def _padded(pad_value: float, n: int = 24, time: int = 10, seed: int = 0) -> dict:
    """Sequences of 3..10 valid steps; everything after ``lengths`` is ``pad_value``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, time + 1, size=n).astype(np.int32)
    x = rng.normal(size=(n, time, 3)).astype(np.float32)
    x[np.arange(time)[None, :] >= lengths[:, None]] = pad_value
    y = (x[:, 0, 0] > 0).astype(np.int32)
    return {"x": x, "y": y, "lengths": lengths}


MODEL = RNNClassifier(num_outputs=2, cell="gru", hidden_size=6)
ZEROS, GARBAGE = _padded(0.0), _padded(50.0)
UNLENGTHED = {"x": GARBAGE["x"], "y": GARBAGE["y"]}


@pytest.fixture(scope="module")
def variables():
    return jdl.train.create_state(MODEL, optax.sgd(0.1), ZEROS["x"][:1], seed=0).variables


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_gradient_analyses_never_read_the_padding(variables):
    def norms(batch):
        return analysis.gradient_norms(MODEL, variables, batch, "cross_entropy")

    clean, padded, read = norms(ZEROS), norms(GARBAGE), norms(UNLENGTHED)
    _close(list(clean.values()), list(padded.values()))
    assert not np.allclose(list(read.values()), list(clean.values()), rtol=1e-3)

    flow = analysis.gradient_flow(MODEL, variables, ZEROS, "cross_entropy")
    flow_padded = analysis.gradient_flow(MODEL, variables, GARBAGE, "cross_entropy")
    _close(flow.loss, flow_padded.loss)
    for a, b in zip(flow.layers, flow_padded.layers, strict=True):
        _close(a.grad_norm, b.grad_norm)
    read = analysis.gradient_flow(MODEL, variables, UNLENGTHED, "cross_entropy")
    assert abs(read.loss - flow.loss) > 1e-3, (read.loss, flow.loss)

    stats = analysis.activation_stats(MODEL, variables, ZEROS)
    stats_padded = analysis.activation_stats(MODEL, variables, GARBAGE)
    assert len(stats) > 0
    for name in stats:
        _close(stats[name].std, stats_padded[name].std)


@pytest.mark.filterwarnings("ignore:lr_find")
def test_training_analyses_never_read_the_padding(variables):
    kw = dict(optimizer=optax.adam(1e-2), steps=6, batch_size=8)
    a = analysis.scan_fit(MODEL, ZEROS, "cross_entropy", **kw)
    b = analysis.scan_fit(MODEL, GARBAGE, "cross_entropy", **kw)
    _close(a.losses, b.losses)
    _close(a.metrics["loss"], b.metrics["loss"])
    assert not np.allclose(
        analysis.scan_fit(MODEL, UNLENGTHED, "cross_entropy", **kw).losses, a.losses
    )

    find = dict(optimizer="sgd", steps=12, seed=0)
    _close(
        analysis.lr_find(MODEL, ZEROS, "cross_entropy", **find).losses,
        analysis.lr_find(MODEL, GARBAGE, "cross_entropy", **find).losses,
    )
    few = {k: v[:4] for k, v in ZEROS.items()}
    few_padded = {k: v[:4] for k, v in GARBAGE.items()}
    check = analysis.overfit_check(MODEL, few, "cross_entropy", steps=20)
    check_padded = analysis.overfit_check(MODEL, few_padded, "cross_entropy", steps=20)
    _close(check.final_loss, check_padded.final_loss)


def test_analyses_refuse_lengths_for_a_model_that_takes_none():
    data = {
        "x": ZEROS["x"].reshape(len(ZEROS["x"]), -1),
        "y": ZEROS["y"],
        "lengths": ZEROS["lengths"],
    }
    model = MLP(widths=(4,), num_outputs=2)
    v = model.init(jax.random.key(0), data["x"][:1], train=False)
    with pytest.raises(ValueError, match="'lengths'.*MLP.*takes no `lengths`"):
        analysis.gradient_flow(model, v, data, "cross_entropy")
    with pytest.raises(ValueError, match="'lengths'.*MLP.*takes no `lengths`"):
        analysis.lr_find(model, data, "cross_entropy", optimizer="sgd", steps=10)
