"""Image augmentations: exact flips and crops, determinism, jit, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.data import gaussian_noise, random_crop, random_flip


@pytest.fixture(scope="module")
def images():
    # 16 distinct images of 5x6 pixels and 2 channels: every pixel value is unique.
    return jnp.arange(16 * 5 * 6 * 2, dtype=jnp.float32).reshape(16, 5, 6, 2)


def test_flip_always_and_never(images):
    key = jax.random.key(0)
    np.testing.assert_array_equal(random_flip(key, images, p=1.0), images[:, :, ::-1, :])
    np.testing.assert_array_equal(random_flip(key, images, p=0.0), images)
    both = random_flip(key, images, horizontal=True, vertical=True, p=1.0)
    np.testing.assert_array_equal(both, images[:, ::-1, ::-1, :])
    up_down = random_flip(key, images, horizontal=False, vertical=True, p=1.0)
    np.testing.assert_array_equal(up_down, images[:, ::-1, :, :])


def test_flip_is_per_example_and_exact(images):
    out = np.asarray(random_flip(jax.random.key(1), images))
    flipped = [np.array_equal(out[i], images[i, :, ::-1]) for i in range(len(images))]
    kept = [np.array_equal(out[i], images[i]) for i in range(len(images))]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # exactly one of the two
    assert 0 < sum(flipped) < len(images)  # some flipped, some not (p=0.5, 16 images)
    # Over many keys, about half of the images are flipped.
    reversed_ = images[:, :, ::-1]
    hits = [
        jnp.all(random_flip(jax.random.key(k), images) == reversed_, axis=(1, 2, 3)).mean()
        for k in range(40)
    ]
    assert 0.42 < float(np.mean(hits)) < 0.58


def test_flip_determinism_and_jit(images):
    a = random_flip(jax.random.key(3), images, vertical=True)
    b = random_flip(jax.random.key(3), images, vertical=True)
    c = random_flip(jax.random.key(4), images, vertical=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    jitted = jax.jit(random_flip, static_argnames=("horizontal", "vertical"))
    np.testing.assert_array_equal(jitted(jax.random.key(3), images, vertical=True), a)
    assert a.shape == images.shape and a.dtype == images.dtype


def test_flip_errors(images):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\), got shape \(5, 6, 2\)"):
        random_flip(key, images[0])
    with pytest.raises(ValueError, match="p must be a probability in \\[0, 1\\], got 1.5"):
        random_flip(key, images, p=1.5)
    with pytest.raises(ValueError, match="both are False"):
        random_flip(key, images, horizontal=False)


def test_crop_with_zero_padding_is_identity(images):
    np.testing.assert_array_equal(random_crop(jax.random.key(0), images, padding=0), images)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_is_a_window_of_the_padded_image(images, mode):
    p = 2
    out = np.asarray(random_crop(jax.random.key(5), images, padding=p, mode=mode))
    assert out.shape == images.shape and out.dtype == np.float32
    padded = np.pad(np.asarray(images), ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
    offsets = []
    for i in range(len(images)):
        matches = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(out[i], padded[i, dy : dy + 5, dx : dx + 6])
        ]
        assert len(matches) >= 1, f"image {i} is not a crop of its padded version"
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # offsets vary per example


def test_crop_determinism_and_jit(images):
    a = random_crop(jax.random.key(6), images, padding=2)
    np.testing.assert_array_equal(a, random_crop(jax.random.key(6), images, padding=2))
    assert not np.array_equal(a, random_crop(jax.random.key(7), images, padding=2))
    jitted = jax.jit(random_crop, static_argnames=("padding", "mode"))
    np.testing.assert_array_equal(jitted(jax.random.key(6), images, padding=2), a)


def test_crop_errors(images):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        random_crop(key, images, padding=-1)
    with pytest.raises(TypeError, match="padding must be an int, got float"):
        random_crop(key, images, padding=1.5)
    with pytest.raises(
        ValueError, match=r"mode must be one of \['constant', 'reflect'\], got 'wrap'"
    ):
        random_crop(key, images, padding=1, mode="wrap")
    with pytest.raises(
        ValueError, match="padding < height and width, got padding 5 for images of 5x6"
    ):
        random_crop(key, images, padding=5, mode="reflect")
    with pytest.raises(ValueError, match="got shape"):
        random_crop(key, images[..., 0], padding=1)


def test_gaussian_noise_statistics_and_determinism():
    x = jnp.full((200, 100), 3.0)
    out = gaussian_noise(jax.random.key(0), x, stddev=0.5)
    assert out.shape == x.shape and out.dtype == x.dtype
    noise = np.asarray(out - x)
    assert abs(noise.mean()) < 0.01
    assert noise.std() == pytest.approx(0.5, rel=0.02)
    np.testing.assert_array_equal(gaussian_noise(jax.random.key(0), x, stddev=0.5), out)
    assert not np.array_equal(gaussian_noise(jax.random.key(1), x, stddev=0.5), out)
    np.testing.assert_array_equal(gaussian_noise(jax.random.key(0), x, stddev=0.0), x)
    # Under jit, stddev may be a traced value.
    traced = jax.jit(lambda k, s: gaussian_noise(k, x, stddev=s))(jax.random.key(0), 0.5)
    np.testing.assert_allclose(traced, out, rtol=1e-6)


def test_gaussian_noise_keeps_low_precision_dtypes():
    x = jnp.zeros((4, 3), dtype=jnp.bfloat16)
    assert gaussian_noise(jax.random.key(1), x, stddev=0.1).dtype == jnp.bfloat16


def test_gaussian_noise_errors():
    with pytest.raises(TypeError, match="floating-point array, got dtype int32"):
        gaussian_noise(jax.random.key(0), jnp.ones((2,), jnp.int32), stddev=1.0)
    with pytest.raises(ValueError, match="stddev must be >= 0, got -0.1"):
        gaussian_noise(jax.random.key(0), jnp.ones((2,)), stddev=-0.1)
