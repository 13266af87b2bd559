"""jdl's Dropout is flax's (same mask, same output) and takes a traced rate."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import MLP
from jdl.nn._layers import Dropout

X = jax.random.normal(jax.random.key(0), (16, 32))
RNGS = {"dropout": jax.random.key(1)}


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_a_python_rate_gives_flaxs_output_bit_for_bit(rate):
    ours = Dropout(rate).apply({}, X, deterministic=False, rngs=RNGS)
    theirs = nn.Dropout(rate).apply({}, X, deterministic=False, rngs=RNGS)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_a_traced_rate_gives_the_same_output_and_finite_gradients(rate):
    def run(r, x):
        return Dropout(r).apply({}, x, deterministic=False, rngs=RNGS)

    traced = jax.jit(run)(jnp.float32(rate), X)
    np.testing.assert_allclose(traced, run(rate, X), rtol=1e-6, atol=0)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(run(jnp.float32(rate), x))))(X)
    assert np.all(np.isfinite(grad)), rate
    np.testing.assert_allclose(np.mean(grad == 0), rate, atol=0.15)  # about `rate` dropped


def test_deterministic_ignores_the_rate():
    out = jax.jit(lambda r: Dropout(r).apply({}, X, deterministic=True))(jnp.float32(0.7))
    np.testing.assert_array_equal(out, X)


def test_an_mlp_with_a_traced_rate_matches_one_built_with_the_number():
    model = MLP(widths=(8,), num_outputs=3, dropout=0.1)
    variables = model.init(jax.random.key(0), X[:1], train=False)

    def apply(rate):
        return model.clone(dropout=rate).apply(variables, X, train=True, rngs=RNGS)

    np.testing.assert_allclose(jax.jit(apply)(jnp.float32(0.4)), apply(0.4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(apply)(jnp.float32(0.0)), apply(0.0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"dropout rate in \[0, 1\), got 1.5"):
        apply(1.5)
