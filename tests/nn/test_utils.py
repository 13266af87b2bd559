"""Tests for jdl.nn.count_params."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import count_params

from ._helpers import random_variables


class DenseBN(fnn.Module):
    @fnn.compact
    def __call__(self, x, *, train):
        x = fnn.Dense(5)(x)
        return fnn.BatchNorm(use_running_average=not train)(x)


def test_counts_params_only_in_a_variables_dict():
    variables = random_variables(DenseBN(), jnp.ones((2, 4)))
    # Dense 4*5 + 5, BatchNorm scale + bias 2*5; batch_stats (mean, var) are buffers.
    assert count_params(variables) == 35
    assert count_params(variables["params"]) == 35
    assert count_params(variables["batch_stats"]) == 10


def test_counts_shapes_from_eval_shape():
    shapes = jax.eval_shape(
        lambda: DenseBN().init(jax.random.key(0), jnp.ones((2, 4)), train=False)
    )
    assert count_params(shapes) == 35


def test_counts_any_pytree():
    assert count_params({"a": np.zeros((2, 3)), "b": [jnp.ones(4), 1.0]}) == 11


def test_rejects_non_array_leaves():
    with pytest.raises(TypeError, match="found a leaf of type str"):
        count_params({"w": "not an array"})
