"""Tests for jdl.nn.init: initialisers by name, checked statistically."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import INITIALIZER_NAMES, get_initializer, normal, standard, uniform

KEY = jax.random.key(0)


# Few distinct shapes: eager JAX compiles each op once per shape, so sharing them keeps this fast.
DENSE = (400, 600)  # 240,000 samples: the std estimate is good to ~0.15%
CONV = (3, 3, 64, 400)


def sample(init, shape=DENSE, dtype=jnp.float32):
    return np.asarray(get_initializer(init)(KEY, shape, dtype), dtype=np.float64)


def assert_std(w, expected, rel=0.02):
    assert abs(w.std() / expected - 1) < rel, (w.std(), expected)
    assert abs(w.mean()) < 0.05 * expected


def test_glorot_is_normalised_uniform():
    n_in, n_out = DENSE
    w = sample("glorot")
    bound = math.sqrt(6 / (n_in + n_out))
    assert w.max() <= bound and w.min() >= -bound
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound
    assert_std(w, bound / math.sqrt(3))


@pytest.mark.parametrize("alias", ["xavier", "glorot_uniform", "xavier_uniform", "GLOROT"])
def test_glorot_aliases_give_identical_samples(alias):
    np.testing.assert_array_equal(sample(alias), sample("glorot"))


def test_glorot_normal_variance():
    assert_std(sample("glorot_normal"), math.sqrt(2 / 1000))


def test_he_normal_variance_uses_fan_in():
    w = sample("he")
    assert_std(w, math.sqrt(2 / 400))


def test_he_uniform_bounds():
    w = sample("he_uniform")
    bound = math.sqrt(6 / 400)
    assert w.max() <= bound and w.min() >= -bound
    assert_std(w, math.sqrt(2 / 400))


def test_he_normal_counts_the_receptive_field_of_conv_kernels():
    w = sample("he", CONV)
    assert_std(w, math.sqrt(2 / (9 * 64)))


def test_he_fan_out_matches_torchvision_conv_init():
    w = sample("he_fan_out", CONV)
    assert_std(w, math.sqrt(2 / (9 * 400)))
    # Untruncated, unlike "he": a normal sample of this size reaches beyond 3.5 stddevs.
    assert np.abs(w).max() > 3.5 * math.sqrt(2 / (9 * 400))
    # "he" truncates at 2 stddevs of a normal rescaled by 1 / 0.8796 to keep the variance.
    assert np.abs(sample("he", CONV)).max() <= 2 * math.sqrt(2 / (9 * 64)) / 0.87962566


def test_lecun_variance():
    assert_std(sample("lecun"), math.sqrt(1 / 400))
    w = sample("lecun_uniform")
    assert w.max() <= math.sqrt(3 / 400)
    assert_std(w, math.sqrt(1 / 400))


def test_standard_init_is_glorot_bengio_uniform():
    n_in = DENSE[0]
    w = sample("standard")
    bound = 1 / math.sqrt(n_in)
    assert w.max() <= bound and w.min() >= -bound
    assert w.max() > 0.99 * bound
    assert_std(w, bound / math.sqrt(3))
    np.testing.assert_array_equal(
        np.asarray(standard()(KEY, (5, 7))), np.asarray(get_initializer("standard")(KEY, (5, 7)))
    )


def test_zeros_and_ones():
    assert not sample("zeros", (3, 4)).any()
    np.testing.assert_array_equal(sample("ones", (3, 4)), np.ones((3, 4)))


def test_orthogonal_rows_are_orthonormal():
    w = sample("orthogonal", (64, 64))
    np.testing.assert_allclose(w @ w.T, np.eye(64), atol=1e-5)


@pytest.mark.parametrize("spec", [0.01, "normal(0.01)", " Normal( 1e-2 ) "])
def test_normal_with_given_stddev(spec):
    w = sample(spec)
    assert_std(w, 0.01)
    assert np.abs(w).max() > 4 * 0.01  # untruncated
    assert_std(np.asarray(normal(0.01)(KEY, DENSE)), 0.01)


@pytest.mark.parametrize("spec", ["uniform(0.5)", uniform(0.5)])
def test_uniform_is_symmetric(spec):
    w = sample(spec)
    assert w.min() >= -0.5 and w.max() <= 0.5
    assert w.min() < -0.49 and w.max() > 0.49
    assert_std(w, 0.5 / math.sqrt(3))


def test_callable_is_returned_unchanged():
    def init(key, shape, dtype=jnp.float32):
        return jnp.full(shape, 3.0, dtype)

    assert get_initializer(init) is init


def test_dtype_is_respected():
    assert get_initializer("he")(KEY, (4, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown initializer 'kaiming_he'") as info:
        get_initializer("kaiming_he")
    for name in ("glorot", "he", "lecun", "standard", "zeros", "normal(<stddev>)"):
        assert name in str(info.value)
    assert set(INITIALIZER_NAMES) >= {"glorot", "glorot_normal", "he", "he_uniform", "lecun"}


@pytest.mark.parametrize("bad", ["normal(abc)", "normal(-1)", -0.1, "uniform(nan)"])
def test_bad_scales_raise_value_error(bad):
    with pytest.raises(ValueError):
        get_initializer(bad)


@pytest.mark.parametrize("bad", [None, True, [0.1]])
def test_non_initializers_raise_type_error(bad):
    with pytest.raises(TypeError, match="initializer must be"):
        get_initializer(bad)
