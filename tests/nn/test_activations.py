"""Tests for jdl.nn.get_activation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import ACTIVATION_NAMES, MLP, get_activation

X = jnp.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


EXPECTED = {
    "relu": [0, 0, 0, 1, 2],
    "tanh": [math.tanh(v) for v in (-2, -1, 0, 1, 2)],
    "sigmoid": [sigmoid(v) for v in (-2, -1, 0, 1, 2)],
    "gelu": [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in (-2, -1, 0, 1, 2)],
    "gelu_tanh": [
        0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        for v in (-2, -1, 0, 1, 2)
    ],
    "elu": [math.exp(-2) - 1, math.exp(-1) - 1, 0, 1, 2],
    "leaky_relu": [-0.02, -0.01, 0, 1, 2],
    "silu": [v * sigmoid(v) for v in (-2, -1, 0, 1, 2)],
    "swish": [v * sigmoid(v) for v in (-2, -1, 0, 1, 2)],
    "softplus": [math.log1p(math.exp(v)) for v in (-2, -1, 0, 1, 2)],
    "identity": [-2, -1, 0, 1, 2],
    "linear": [-2, -1, 0, 1, 2],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values(name):
    np.testing.assert_allclose(get_activation(name)(X), EXPECTED[name], rtol=1e-6, atol=1e-7)


def test_selu_constants():
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    np.testing.assert_allclose(
        get_activation("selu")(X),
        [scale * alpha * (math.exp(v) - 1) if v < 0 else scale * v for v in (-2, -1, 0, 1, 2)],
        rtol=1e-6,
    )


def test_exact_and_tanh_gelu_differ():
    assert float(jnp.abs(get_activation("gelu")(X) - get_activation("gelu_tanh")(X)).max()) > 1e-4


def test_every_listed_name_works_case_insensitively():
    for name in ACTIVATION_NAMES:
        assert get_activation(name.upper())(X).shape == X.shape


def test_none_is_identity_and_callables_pass_through():
    np.testing.assert_array_equal(get_activation(None)(X), X)
    fn = jnp.sin
    assert get_activation(fn) is fn


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'rellu'") as info:
        get_activation("rellu")
    for name in ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu", "swish"):
        assert name in str(info.value)


def test_non_callable_raises_type_error():
    with pytest.raises(TypeError, match="activation must be"):
        get_activation(3)


def test_softmax_and_log_softmax_normalise_over_the_last_axis():
    x = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    probs = get_activation("softmax")(x)
    np.testing.assert_allclose(probs.sum(-1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(get_activation("log_softmax")(x), np.log(probs), rtol=1e-5)
    model = MLP(widths=(4,), num_outputs=3, output_activation="softmax")
    v = model.init(jax.random.key(0), jnp.ones((2, 5)), train=False)
    out = model.apply(v, jnp.ones((2, 5)), train=False)
    np.testing.assert_allclose(out.sum(-1), [1.0, 1.0], rtol=1e-6)
