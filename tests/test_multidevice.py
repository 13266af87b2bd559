"""Models on 8 simulated CPU devices: a batch sharded over a "data" mesh axis gives the
same outputs (and the same BatchNorm statistics) as the whole batch on one device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import jdl

pytestmark = pytest.mark.multidevice


def _mesh():
    return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))


@pytest.mark.parametrize(
    "model, shape",
    [
        (jdl.nn.MLP(widths=(32, 32), num_outputs=10, batch_norm=True), (16, 8, 8, 1)),
        (jdl.nn.CNN(features=(8, 8), ndim=1, num_outputs=10, batch_norm=True), (16, 40)),
    ],
    ids=["mlp-bn", "cnn1d-bn"],
)
def test_sharded_forward_matches_single_device(model, shape):
    assert jax.device_count() == 8
    x = jax.random.normal(jax.random.key(0), shape)
    variables = model.init(jax.random.key(1), x, train=False)

    def forward(variables, x):
        return model.apply(variables, x, train=True, mutable=["batch_stats"])

    want_out, want_state = jax.jit(forward)(variables, x)
    mesh = _mesh()
    x_sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    assert len(x_sharded.sharding.device_set) == 8
    with jax.set_mesh(mesh):
        got_out, got_state = jax.jit(forward)(variables, x_sharded)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-5)
    # Under jit the BatchNorm statistics of a sharded batch are global, not per device.
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got_state, want_state
    )
    assert jnp.isfinite(got_out).all()
