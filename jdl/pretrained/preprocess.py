"""Input preprocessing matching each weight source: resize, centre crop, normalise.

Pretrained weights only work on inputs prepared the way they were trained on:

- torchvision / timm ImageNet ResNets (:data:`TORCHVISION`): RGB in ``[0, 1]``, resize the
  shorter side to 256, centre-crop 224, subtract mean ``(0.485, 0.456, 0.406)`` and divide
  by std ``(0.229, 0.224, 0.225)`` per channel.
- Keras VGG16 / VGG19 / ResNet50 (:data:`KERAS_CAFFE`): the "caffe" mode — RGB in
  ``[0, 255]`` flipped to **BGR**, minus the ImageNet BGR mean ``(103.939, 116.779, 123.68)``,
  no scaling; 224 x 224 inputs.

jdl models are channels-last (NHWC), so every function here takes and returns NHWC arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "KERAS_CAFFE",
    "TORCHVISION",
    "center_crop",
    "normalize",
    "preprocess",
    "resize_shorter",
]

#: torchvision's ImageNet recipe (``ImageClassification(crop_size=224)``).
TORCHVISION: Mapping[str, Any] = {
    "input_size": 224,
    "resize_size": 256,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "scale": 1.0,
    "channel_order": "RGB",
}
#: Keras applications' ``preprocess_input`` for VGG16/VGG19/ResNet50 (``mode="caffe"``).
KERAS_CAFFE: Mapping[str, Any] = {
    "input_size": 224,
    "resize_size": 224,
    "mean": (103.939, 116.779, 123.68),
    "std": (1.0, 1.0, 1.0),
    "scale": 255.0,
    "channel_order": "BGR",
}


def _images(x: Any) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(
            f"expected images of shape (batch, height, width, channels) or (height, width, "
            f"channels), got shape {tuple(x.shape)}"
        )
    return x


def resize_shorter(images: Any, size: int, *, method: str = "bilinear") -> jax.Array:
    """Resize NHWC images so that their shorter side is ``size``, keeping the aspect ratio.

    Uses :func:`jax.image.resize` with antialiasing (as torchvision's ``antialias=True``).
    """
    x = _images(images)
    h, w = x.shape[1:3]
    if h <= w:
        new = (size, max(1, round(w * size / h)))
    else:
        new = (max(1, round(h * size / w)), size)
    return jax.image.resize(x, (x.shape[0], *new, x.shape[3]), method=method, antialias=True)


def center_crop(images: Any, size: int | tuple[int, int]) -> jax.Array:
    """The central ``size`` x ``size`` (or ``(height, width)``) window of NHWC images.

    Raises:
      ValueError: if the images are smaller than the crop.
    """
    x = _images(images)
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[1:3]
    if ch > h or cw > w:
        raise ValueError(f"cannot crop {ch}x{cw} out of images of size {h}x{w}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[:, top : top + ch, left : left + cw, :]


def normalize(images: Any, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """``(images - mean) / std`` per channel (last axis).

    Raises:
      ValueError: if the channel count differs from ``len(mean)``.
    """
    x = _images(images)
    if x.shape[-1] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"normalize got {x.shape[-1]} channels but {len(mean)} means and {len(std)} stds"
        )
    return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


def preprocess(images: Any, info: Mapping[str, Any] | str = "torchvision") -> jax.Array:
    """Prepare RGB images in ``[0, 1]`` (NHWC) for a pretrained model.

    Args:
      images: RGB images with values in ``[0, 1]``, shape ``(batch, H, W, 3)`` or ``(H, W, 3)``.
      info: ``"torchvision"`` (also timm), ``"keras"`` (caffe mode), or a dict like
        :data:`TORCHVISION` (e.g. ``Pretrained.info``).

    Returns:
      ``(batch, input_size, input_size, 3)`` float32 arrays, normalised and in the source's
      channel order.

    Example:
      >>> import numpy as np
      >>> preprocess(np.full((2, 300, 400, 3), 0.5)).shape
      (2, 224, 224, 3)
    """
    if isinstance(info, str):
        table = {"torchvision": TORCHVISION, "timm": TORCHVISION, "keras": KERAS_CAFFE}
        if info not in table:
            raise ValueError(f"unknown preprocessing {info!r}; known: {', '.join(table)}")
        info = table[info]
    x = resize_shorter(images, int(info["resize_size"]))
    x = center_crop(x, int(info["input_size"])) * float(info.get("scale", 1.0))
    if info.get("channel_order", "RGB") == "BGR":
        x = x[..., ::-1]
    return normalize(x, info["mean"], info["std"])
