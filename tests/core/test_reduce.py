"""jdl._core.reduce: the per-example and masked means losses and metrics share."""

import jax.numpy as jnp
import numpy as np
import pytest

from jdl._core.reduce import check_same_shape, masked_mean, per_example_mean


def test_masked_mean_counts_only_the_real_examples():
    values = jnp.array([1.0, 2.0, 3.0, 100.0])
    assert float(masked_mean(values, None)) == pytest.approx(26.5)
    assert float(masked_mean(values, jnp.array([1, 1, 1, 0], bool))) == pytest.approx(2.0)
    assert float(masked_mean(values, jnp.zeros(4, bool))) == 0.0  # no division by zero
    with pytest.raises(ValueError, match="one entry per example"):
        masked_mean(values, jnp.ones((4, 1), bool))


def test_per_example_mean_keeps_the_batch_axis():
    x = jnp.arange(12.0).reshape(2, 3, 2)
    np.testing.assert_allclose(per_example_mean(x), [2.5, 8.5])
    assert per_example_mean(jnp.ones(5)).shape == (5,)


def test_check_same_shape_accepts_only_the_width_one_head():
    p, t = check_same_shape("mse", jnp.ones((4, 1)), jnp.ones(4))
    assert p.shape == t.shape == (4, 1)
    p, t = check_same_shape("mse", jnp.ones(4), jnp.ones((4, 1)))
    assert p.shape == t.shape == (4, 1)
    with pytest.raises(ValueError, match="mse: predictions and targets must have the same shape"):
        check_same_shape("mse", jnp.ones((4, 2)), jnp.ones(4))
