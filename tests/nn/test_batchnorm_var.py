"""BatchNorm's running variance: Flax's biased update by default, PyTorch's unbiased one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import MLP, CifarResNet


def _updated_var(model, x):
    variables = model.init(jax.random.key(0), x[:1], train=False)
    _, new = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return variables, new["batch_stats"]


@pytest.mark.parametrize("mode, ddof", [("biased", 0), ("unbiased", 1)])
def test_running_variance_of_a_dense_layer(mode, ddof):
    x = jax.random.normal(jax.random.key(1), (8, 5)) * 3.0
    model = MLP(widths=(4,), num_outputs=2, batch_norm=True, bn_running_var=mode)
    variables, stats = _updated_var(model, x)
    dense = variables["params"]["Dense_0"]
    h = np.asarray(x @ dense["kernel"] + dense["bias"])
    expected = 0.9 * 1.0 + 0.1 * h.var(axis=0, ddof=ddof)  # running var starts at 1
    np.testing.assert_allclose(stats["BatchNorm_0"]["var"], expected, rtol=1e-5)
    np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], 0.1 * h.mean(axis=0), atol=1e-6)


def test_unbiased_counts_every_position_of_a_conv_and_keeps_the_outputs():
    x = jax.random.normal(jax.random.key(2), (4, 8, 8, 3))
    biased = CifarResNet(depth=8, num_outputs=10)
    unbiased = CifarResNet(depth=8, num_outputs=10, bn_running_var="unbiased")
    v, stats_b = _updated_var(biased, x)
    _, stats_u = _updated_var(unbiased, x)
    # n = 4 * 8 * 8 values per channel: the extra term is var / (n - 1) times (1 - m).
    var_b = (stats_b["bn1"]["var"] - 0.9) / 0.1
    np.testing.assert_allclose(
        stats_u["bn1"]["var"], 0.9 + 0.1 * var_b * 256 / 255, rtol=1e-5, atol=1e-7
    )
    out_b = biased.apply(v, x, train=True, mutable=["batch_stats"])[0]
    out_u = unbiased.apply(v, x, train=True, mutable=["batch_stats"])[0]
    np.testing.assert_allclose(out_b, out_u, rtol=1e-6)  # normalisation is the same
    assert jax.tree_util.tree_structure(stats_b) == jax.tree_util.tree_structure(stats_u)


def test_unknown_running_var_mode_is_refused():
    model = MLP(widths=(4,), num_outputs=2, batch_norm=True, bn_running_var="torch")
    with pytest.raises(ValueError, match="bn_running_var must be one of"):
        model.init(jax.random.key(0), jnp.ones((2, 3)), train=False)
