"""jit, sharded and pmap training give the same parameters on 8 simulated devices."""

import functools

import jax
import numpy as np
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import create_state, optimizer, parallelize, train_step

pytestmark = pytest.mark.multidevice


def _train(strategy, model, batches, steps=12):
    state = create_state(model, optimizer("momentum", 0.1), batches[0], seed=0)
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), strategy)
    for i in range(steps):
        state, metrics = step(state, batches[i % len(batches)])
    return step.unreplicate(state), metrics


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_strategies_agree(batch_norm):
    src = blobs(128, seed=0)
    batches = [{"x": src.x[i : i + 32], "y": src.y[i : i + 32]} for i in range(0, 128, 32)]
    model = TinyMLP(batch_norm=batch_norm)
    results = {s: _train(s, model, batches) for s in ("jit", "sharded", "pmap")}
    ref_state, ref_metrics = results["jit"]
    for strategy in ("sharded", "pmap"):
        state, metrics = results[strategy]
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
            state.variables,
            ref_state.variables,
        )
        assert float(metrics["loss"]) == pytest.approx(float(ref_metrics["loss"]), rel=1e-5)


def test_default_strategy_is_sharded_and_fit_uses_it():
    assert jdl.train.default_strategy() == "sharded"
    h = jdl.fit(
        TinyMLP(batch_norm=True),
        blobs(256),
        batch_size=32,
        loss="cross_entropy",
        optimizer=optimizer("momentum", 0.1),
        epochs=2,
        validation=blobs(50),
        verbose=0,
    )
    single = jdl.fit(
        TinyMLP(batch_norm=True),
        blobs(256),
        batch_size=32,
        loss="cross_entropy",
        optimizer=optimizer("momentum", 0.1),
        epochs=2,
        validation=blobs(50),
        verbose=0,
        strategy="pmap",
    )
    assert h.metrics["val_accuracy"] == pytest.approx(single.metrics["val_accuracy"])
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        h.variables,
        single.variables,
    )


def test_batch_not_divisible_by_devices_is_rejected():
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), "pmap")
    with pytest.raises(ValueError, match="multiple of 8; got 12"):
        step.put_batch({"x": np.zeros((12, 5)), "y": np.zeros(12, int)})


@pytest.mark.parametrize("strategy", ["sharded", "pmap"])
def test_predict_on_8_devices_equals_one_device(strategy):
    src = blobs(37, seed=1)  # 37 examples: the last batch of 16 is padded
    model = TinyMLP(batch_norm=True)
    variables = model.init(jax.random.key(0), src.x[:1], train=False)
    want = jdl.train.predict(model, variables, src.x, batch_size=16, strategy="jit")
    got = jdl.train.predict(model, variables, src.x, batch_size=16, strategy=strategy)
    assert got.shape == (37, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
