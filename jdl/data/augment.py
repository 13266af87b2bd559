"""Image augmentations: pure, keyed JAX functions on a batch of images ``(N, H, W, C)``.

Every function takes an explicit PRNG key first, draws independent randomness for each
image of the batch, preserves shape and dtype, and can be ``jax.jit``-ed (pass the
keyword-only options as static arguments, or close over them)::

    flip = jax.jit(random_flip, static_argnames=("horizontal", "vertical"))
    crop = jax.jit(random_crop, static_argnames=("padding", "mode"))

The same key always gives the same result.
"""

from __future__ import annotations

import functools
import numbers
from typing import Literal

import jax
import jax.numpy as jnp

from jdl._core.checks import is_int

__all__ = ["gaussian_noise", "random_crop", "random_flip"]

_CROP_MODES = ("constant", "reflect")


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"images must be a batch of shape (N, H, W, C), got shape {tuple(images.shape)} "
            f"({images.ndim} dimensions); add a batch axis with images[None] for one image"
        )


def _is_concrete_number(value: object) -> bool:
    # Python / NumPy scalars; traced values (under jit) are not ``numbers.Real``.
    return isinstance(value, numbers.Real)


def random_flip(
    key: jax.Array,
    images: jax.Array,
    *,
    horizontal: bool = True,
    vertical: bool = False,
    p: float = 0.5,
) -> jax.Array:
    """Flips each image of a batch left-right and/or upside-down with probability ``p``.

    Each image and each direction gets its own coin toss.

    Args:
        key: A JAX PRNG key.
        images: A batch ``(N, H, W, C)``.
        horizontal: Flip left-right (reverse the width axis) with probability ``p``.
        vertical: Flip upside-down (reverse the height axis) with probability ``p``.
        p: Probability of each flip, in ``[0, 1]``.

    Returns:
        The batch with some images flipped; same shape and dtype.

    Raises:
        ValueError: If ``images`` is not 4-D, ``p`` is outside ``[0, 1]``, or both
            ``horizontal`` and ``vertical`` are false.

    Example:
        >>> images = jnp.arange(8.0).reshape(2, 2, 2, 1)
        >>> random_flip(jax.random.key(0), images, p=1.0)[0, 0, :, 0]
        Array([1., 0.], dtype=float32)
    """
    images = jnp.asarray(images)
    _check_images(images)
    if not (horizontal or vertical):
        raise ValueError("random_flip needs horizontal=True and/or vertical=True; both are False")
    if _is_concrete_number(p) and not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    return _flip(key, images, p, horizontal=bool(horizontal), vertical=bool(vertical))


# The implementations are jitted so eager calls compile once per shape instead of once
# per primitive; inside a user's jit they are simply inlined.
@functools.partial(jax.jit, static_argnames=("horizontal", "vertical"))
def _flip(
    key: jax.Array, images: jax.Array, p: jax.Array, *, horizontal: bool, vertical: bool
) -> jax.Array:
    key_h, key_v = jax.random.split(key)
    n = images.shape[0]
    if horizontal:
        flip = jax.random.bernoulli(key_h, p, (n,))[:, None, None, None]
        images = jnp.where(flip, images[:, :, ::-1, :], images)
    if vertical:
        flip = jax.random.bernoulli(key_v, p, (n,))[:, None, None, None]
        images = jnp.where(flip, images[:, ::-1, :, :], images)
    return images


def random_crop(
    key: jax.Array,
    images: jax.Array,
    *,
    padding: int,
    mode: Literal["constant", "reflect"] = "constant",
) -> jax.Array:
    """Pads each image by ``padding`` on every side, then crops it back at a random offset.

    The classic CIFAR augmentation (pad 4, crop 32x32): each image is shifted by up to
    ``padding`` pixels in each direction, independently per image. ``padding=0`` returns
    the images unchanged.

    Args:
        key: A JAX PRNG key.
        images: A batch ``(N, H, W, C)``.
        padding: Pixels added on each side of height and width, >= 0.
        mode: ``"constant"`` pads with zeros; ``"reflect"`` mirrors the image without
            repeating the edge (needs ``padding < H`` and ``padding < W``).

    Returns:
        The cropped batch ``(N, H, W, C)``, same dtype.

    Raises:
        ValueError: If ``images`` is not 4-D, ``padding`` is negative (or too large for
            ``"reflect"``), or ``mode`` is unknown.
        TypeError: If ``padding`` is not an integer.

    Example:
        >>> images = jnp.ones((2, 4, 4, 3))
        >>> random_crop(jax.random.key(0), images, padding=1).shape
        (2, 4, 4, 3)
    """
    images = jnp.asarray(images)
    _check_images(images)
    if not is_int(padding):
        raise TypeError(f"padding must be an int, got {type(padding).__name__}: {padding!r}")
    padding = int(padding)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if mode not in _CROP_MODES:
        raise ValueError(f"mode must be one of {list(_CROP_MODES)}, got {mode!r}")
    height, width = images.shape[1:3]
    if mode == "reflect" and padding >= min(height, width):
        raise ValueError(
            f"mode='reflect' needs padding < height and width, got padding {padding} for "
            f"images of {height}x{width}"
        )
    if padding == 0:
        return images
    return _crop(key, images, padding=padding, mode=mode)


@functools.partial(jax.jit, static_argnames=("padding", "mode"))
def _crop(key: jax.Array, images: jax.Array, *, padding: int, mode: str) -> jax.Array:
    n, height, width, channels = images.shape
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(images, pad, mode=mode)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        start = (offset[0], offset[1], jnp.zeros((), offset.dtype))
        return jax.lax.dynamic_slice(image, start, (height, width, channels))

    return jax.vmap(crop)(padded, offsets)


def gaussian_noise(key: jax.Array, x: jax.Array, *, stddev: float) -> jax.Array:
    """Adds independent Gaussian noise ``N(0, stddev**2)`` to every element of ``x``.

    Works on any shape (images, features, ...).

    Args:
        key: A JAX PRNG key.
        x: A floating-point array.
        stddev: Standard deviation of the noise, >= 0.

    Returns:
        ``x + stddev * normal(key, x.shape)``, same shape and dtype.

    Raises:
        TypeError: If ``x`` is not floating point (convert integer images first, e.g.
            ``x / 255``).
        ValueError: If ``stddev`` is negative.

    Example:
        >>> gaussian_noise(jax.random.key(0), jnp.zeros((2, 3)), stddev=0.0)
        Array([[0., 0., 0.],
               [0., 0., 0.]], dtype=float32)
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"x must be a floating-point array, got dtype {x.dtype}; convert it first "
            "(e.g. images.astype(jnp.float32) / 255)"
        )
    if _is_concrete_number(stddev) and stddev < 0:
        raise ValueError(f"stddev must be >= 0, got {stddev}")
    return _noise(key, x, stddev)


@jax.jit
def _noise(key: jax.Array, x: jax.Array, stddev: jax.Array) -> jax.Array:
    noise = jax.random.normal(key, x.shape, dtype=x.dtype)
    return x + jnp.asarray(stddev, dtype=x.dtype) * noise
