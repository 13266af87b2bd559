"""What is equal across strategies, on 8 simulated devices (the table of
docs/howto/multi_device.rst, measured by benchmarks/strategy_equality.py): every strategy
trains jdl models -- BatchNorm and dropout included -- to jit's parameters; only a model's
own ``flax.linen.Dropout`` under ``pmap`` draws other masks."""

import functools

import jax
import numpy as np
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.nn._layers import GLOBAL_DROPOUT_RNG, Dropout, global_dropout_masks
from jdl.train import STRATEGIES, create_state, optimizer, parallelize, train_step

pytestmark = pytest.mark.multidevice

SRC = blobs(128, seed=0)
BATCHES = [{"x": SRC.x[i : i + 32], "y": SRC.y[i : i + 32]} for i in range(0, 128, 32)]


def _train(strategy, model, steps=8):
    state = create_state(model, optimizer("momentum", 0.1), BATCHES[0], seed=0)
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), strategy)
    for i in range(steps):
        state, metrics = step(state, BATCHES[i % len(BATCHES)])
    return jax.device_get(step.unreplicate(state).variables), float(metrics["loss"])


def _max_difference(a, b):
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in leaves)


@pytest.mark.parametrize(
    "model",
    [
        jdl.nn.MLP(widths=(16, 16), num_outputs=3, batch_norm=True),
        jdl.nn.MLP(widths=(16, 16), num_outputs=3, dropout=0.5),
    ],
    ids=["batchnorm", "jdl-dropout"],
)
def test_every_strategy_trains_jdl_models_to_jits_parameters(model):
    want, want_loss = _train("jit", model)
    for strategy in (s for s in STRATEGIES if s != "jit"):
        got, loss = _train(strategy, model)
        assert _max_difference(got, want) <= 1e-5, strategy
        assert loss == pytest.approx(want_loss, abs=1e-5), strategy


def test_flax_dropout_differs_under_pmap_only():
    """A model's own flax.linen.Dropout gets a per-device key under pmap: other masks."""
    model = TinyMLP(dropout=0.5)
    want, _ = _train("jit", model)
    sharded, _ = _train("sharded", model)
    pmapped, _ = _train("pmap", model)
    assert _max_difference(sharded, want) <= 1e-5
    assert _max_difference(pmapped, want) > 1e-2  # same distribution, different masks


@pytest.mark.parametrize("broadcast_dims", [(), (0,), (1,)])
def test_each_device_draws_its_rows_of_the_global_mask(broadcast_dims):
    x = jax.random.normal(jax.random.key(0), (16, 6, 4))
    key = jax.random.key(1)
    layer = Dropout(0.5, broadcast_dims=broadcast_dims)
    want = layer.apply({}, x, deterministic=False, rngs={"dropout": key})

    def local(x):
        rngs = {
            "dropout": jax.random.fold_in(key, jax.lax.axis_index("i")),
            GLOBAL_DROPOUT_RNG: key,
        }
        with global_dropout_masks("i"):
            return layer.apply({}, x, deterministic=False, rngs=rngs)

    got = jax.pmap(local, axis_name="i")(x.reshape(8, 2, 6, 4)).reshape(x.shape)
    np.testing.assert_array_equal(got, want)
    # Outside the context the layer is flax's: every device its own key, other masks.
    plain = jax.pmap(
        lambda x: layer.apply(
            {}, x, deterministic=False,
            rngs={"dropout": jax.random.fold_in(key, jax.lax.axis_index("i"))},
        ),
        axis_name="i",
    )(x.reshape(8, 2, 6, 4)).reshape(x.shape)  # fmt: skip
    assert not np.array_equal(plain, want)
