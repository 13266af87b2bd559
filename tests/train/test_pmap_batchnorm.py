"""A user's own ``flax.linen.BatchNorm`` that is not synchronised under ``pmap`` is refused.

Without ``axis_name`` each device would keep its own statistics, ``unreplicate`` would
return replica 0's, and the run would silently differ from ``jit``/``"sharded"``. jdl's
models (a ``bn_axis_name`` field) and layers given ``axis_name="batch"`` train as before.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import numpy as np
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import create_state, optimizer, parallelize, train_step

pytestmark = pytest.mark.multidevice


class Block(nn.Module):
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(8)(x)
        return nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name)(x)


class Custom(nn.Module):
    """A user's model: a BatchNorm inside a submodule, no ``bn_axis_name`` field."""

    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = Block(self.axis_name, name="block")(x, train)
        return nn.Dense(3)(nn.relu(x))


def _batch():
    src = blobs(64, seed=0)
    return {"x": src.x[:32], "y": src.y[:32]}


def _step(strategy):
    return parallelize(functools.partial(train_step, loss_fn="cross_entropy"), strategy)


def test_unsynchronised_batch_norm_under_pmap_is_refused_before_training():
    batch = _batch()
    state = create_state(Custom(), optimizer("sgd", 0.1), batch, seed=0)
    step = _step("pmap")
    with pytest.raises(ValueError, match=r"block/BatchNorm_0.*axis_name='batch'") as info:
        step(state, batch)
    assert '"sharded"' in str(info.value)  # the other fix is named too
    with pytest.raises(ValueError, match="block/BatchNorm_0"):
        jdl.fit(
            Custom(),
            blobs(64),
            batch_size=32,
            loss="cross_entropy",
            optimizer=optimizer("sgd", 0.1),
            epochs=1,
            strategy="pmap",
            verbose=0,
        )


@pytest.mark.parametrize(
    "models",
    [(Custom(), Custom(axis_name="batch")), (TinyMLP(batch_norm=True),) * 2],
    ids=["axis_name", "field"],
)
def test_synchronised_batch_norm_under_pmap_trains_as_jit(models):
    """A layer given ``axis_name="batch"`` (it cannot run under jit), or a model with a
    ``bn_axis_name`` field (jdl sets it under pmap), gives jit's statistics."""
    batch = _batch()
    results = {}
    for strategy, model in zip(("jit", "pmap"), models, strict=True):
        state = create_state(model, optimizer("sgd", 0.1), batch, seed=0)
        step = _step(strategy)
        for _ in range(3):
            state, _ = step(state, batch)
        results[strategy] = step.unreplicate(state).variables
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        results["pmap"],
        results["jit"],
    )


def test_unsynchronised_batch_norm_is_fine_where_statistics_are_global_or_unused():
    batch = _batch()
    state = create_state(Custom(), optimizer("sgd", 0.1), batch, seed=0)
    step = _step("sharded")  # jit over a mesh: statistics of the global batch
    state, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    variables = step.unreplicate(state).variables
    data = blobs(50, seed=1)
    # evaluation and prediction update no statistics: pmap is fine
    got = jdl.evaluate(Custom(), variables, data, strategy="pmap")
    assert got == pytest.approx(jdl.evaluate(Custom(), variables, data, strategy="jit"), rel=1e-5)
