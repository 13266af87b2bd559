"""jdl models in Flax NNX and NNX models in jdl, through flax.nnx.bridge (docs/howto/nnx.rst)."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from flax.nnx import bridge

import jdl
from jdl import nn

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 5)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int32)


def test_a_jdl_model_as_an_nnx_module_computes_what_linen_computes():
    module = nn.MLP(widths=(16,), num_outputs=3)
    model = bridge.ToNNX(module, rngs=nnx.Rngs(0))
    bridge.lazy_init(model, X[:1], train=False)
    variables = {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}
    np.testing.assert_allclose(
        model(X, train=False), module.apply(variables, X, train=False), rtol=1e-6, atol=1e-6
    )


def test_nnx_training_of_a_jdl_model_then_evaluated_by_jdl():
    model = bridge.ToNNX(nn.MLP(widths=(16,), num_outputs=2), rngs=nnx.Rngs(0))
    bridge.lazy_init(model, X[:1], train=False)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jdl.losses.cross_entropy(m(X, train=True), Y))(
            model
        )
        optimizer.update(model, grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(30):
        last = float(step(model, optimizer))
    assert last < 0.5 * first
    variables = {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}
    result = jdl.evaluate(nn.MLP(widths=(16,), num_outputs=2), variables, (X, Y),
                          loss="cross_entropy")  # fmt: skip
    logits = model(X, train=False)
    assert result["loss"] == pytest.approx(float(jdl.losses.cross_entropy(logits, Y)), rel=1e-5)


def test_batchnorm_statistics_update_and_dropout_masks_change():
    model = bridge.ToNNX(
        nn.MLP(widths=(8,), num_outputs=2, batch_norm=True, dropout=0.5),
        rngs=nnx.Rngs(params=0, dropout=1),
    )
    bridge.lazy_init(model, X[:1], train=False)
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))
    a = model(X + 3.0, train=True, mutable=["batch_stats"])
    b = model(X + 3.0, train=True, mutable=["batch_stats"])
    after = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    assert (
        np.abs(np.asarray(after["BatchNorm_0"]["mean"]) - before["BatchNorm_0"]["mean"]).max() > 0.1
    )
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 0  # new dropout masks per call


class TwoLayer(nnx.Module):
    def __init__(self, din, dout, *, rngs):
        self.hidden = nnx.Linear(din, 16, rngs=rngs)
        self.head = nnx.Linear(16, dout, rngs=rngs)

    def __call__(self, x, *, train=False):
        return self.head(jax.nn.relu(self.hidden(x)))


def test_an_nnx_model_trained_and_analysed_by_jdl():
    model = bridge.to_linen(TwoLayer, 5, 2)
    history = jdl.fit(model, (X, Y), batch_size=16, epochs=4, optimizer=("adam", 1e-2),
                      loss="cross_entropy", verbose=0)  # fmt: skip
    assert history.metrics["loss"][-1] < history.metrics["loss"][0]
    result = jdl.evaluate(model, history.variables, (X, Y), loss="cross_entropy")
    assert result["accuracy"] > 0.8
    flow = jdl.analysis.gradient_flow(model, history.variables, {"x": X, "y": Y},
                                      "cross_entropy", activation="relu")  # fmt: skip
    # Parameter gradients are read for NNX layers; activations are not (documented).
    for name in ("hidden", "head"):
        layer = flow[name]
        assert np.isfinite(layer.grad_norm) and layer.grad_norm > 0
        assert np.isfinite(layer.param_norm) and layer.param_norm > 0
        assert np.isnan(layer.activation_std)
