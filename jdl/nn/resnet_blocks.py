"""The residual blocks of jdl's ResNets: :class:`BasicBlock` and :class:`Bottleneck`.

As in Flax's ImageNet example, a block takes its conv and BatchNorm as partially applied
constructors (``conv``, ``norm``) from the network that holds it, so the settings those
carry (initialiser, dtypes, BatchNorm momentum, epsilon and axis name) are declared once, on
the network. A block adds only what varies per layer: features, kernel size, stride,
padding, and ``use_running_average`` from its ``train`` argument.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn._layers import ModuleDef, batch_norm_def, bias_free_conv, pad

__all__ = ["BasicBlock", "Bottleneck"]

#: Shortcut kinds of the residual blocks (see :class:`BasicBlock`).
SHORTCUTS = ("projection", "pad", "none")


class _Block(nn.Module):
    """Fields and the shortcut shared by :class:`BasicBlock` and :class:`Bottleneck`."""

    features: int
    strides: int = 1
    shortcut: str = "projection"
    zero_init_residual: bool = False
    conv: ModuleDef = bias_free_conv()
    norm: ModuleDef = batch_norm_def()

    expansion: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(
                f"unknown shortcut {self.shortcut!r}; valid shortcuts are {', '.join(SHORTCUTS)}"
            )
        if self.strides not in (1, 2):
            raise ValueError(f"residual block strides must be 1 or 2, got {self.strides!r}")
        super().__post_init__()

    def _last_norm(self, train: bool, name: str) -> nn.Module:
        scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        return self.norm(use_running_average=not train, scale_init=scale, name=name)

    def _residual(self, x: jax.Array, y: jax.Array, train: bool) -> jax.Array:
        """``relu(y + shortcut(x))``, or ``relu(y)`` for ``shortcut="none"``."""
        if self.shortcut == "none":
            return nn.relu(y)
        out_features = y.shape[-1]
        if self.strides == 1 and x.shape[-1] == out_features:
            return nn.relu(y + x)
        s = self.strides
        if self.shortcut == "projection":
            x = self.conv(out_features, (1, 1), strides=s, padding=pad(0), name="downsample_conv")(
                x
            )
            x = self.norm(use_running_average=not train, name="downsample_bn")(x)
        else:  # "pad": He et al.'s option A, parameter-free.
            extra = out_features - x.shape[-1]
            if extra < 0:
                raise ValueError(
                    f"shortcut='pad' can only add channels, but the block maps {x.shape[-1]} "
                    f"channels to {out_features}"
                )
            x = x[:, ::s, ::s, :]
            x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return nn.relu(y + x)


class BasicBlock(_Block):
    """The two-3x3-conv residual block of ResNet-18/34 and the CIFAR ResNets.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; ``conv1`` carries the stride.
    The shortcut is the identity when shapes match; when they do not (stride 2 or a change of
    width) it is, by ``shortcut``:

    - ``"projection"``: ``downsample_bn(downsample_conv(x))``, a strided 1x1 conv and
      BatchNorm (torchvision's ``downsample.0``/``downsample.1``; He et al.'s option B);
    - ``"pad"``: ``x[:, ::2, ::2]`` with zero channels appended half before and half after
      (He et al.'s parameter-free option A);
    - ``"none"``: no shortcut at all, even an identity one (a "plain" block).

    Submodules: ``conv1``, ``bn1``, ``conv2``, ``bn2`` (and ``downsample_conv``,
    ``downsample_bn``).

    Attributes:
      features: output channels.
      strides: stride of ``conv1`` (1 or 2).
      shortcut: ``"projection"``, ``"pad"`` or ``"none"``.
      zero_init_residual: initialise ``bn2``'s scale to zero so the block starts as the
        identity (Goyal et al. 2017).
      conv: the conv constructor, called as ``conv(features, kernel_size, strides=...,
        padding=..., name=...)``; default bias-free with He normal (fan-out) kernels, as
        torchvision. The networks pass theirs, carrying their initialiser and dtypes.
      norm: the BatchNorm constructor, called as ``norm(use_running_average=..., name=...)``;
        default momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5. The networks pass theirs,
        carrying their ``bn_*`` settings and dtypes.
    """

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the block to NHWC features ``x``; returns ``(batch, H / s, W / s, features)``."""
        conv = self.conv
        y = conv(self.features, (3, 3), strides=self.strides, padding=pad(1), name="conv1")(x)
        y = nn.relu(self.norm(use_running_average=not train, name="bn1")(y))
        y = conv(self.features, (3, 3), padding=pad(1), name="conv2")(y)
        y = self._last_norm(train, "bn2")(y)
        return self._residual(x, y, train)


class Bottleneck(_Block):
    """The 1x1-3x3-1x1 bottleneck block of ResNet-50/101/152, v1.5 (stride on the 3x3 conv).

    ``conv1`` (1x1, ``features``) -> ``bn1`` -> relu -> ``conv2`` (3x3, ``features``, stride)
    -> ``bn2`` -> relu -> ``conv3`` (1x1, ``4 * features``) -> ``bn3``, plus the shortcut
    (see :class:`BasicBlock`), then relu. Output channels are ``4 * features``.

    With ``stride_in_1x1=True`` the stride moves to ``conv1`` (ResNet v1: the original
    paper's and Keras' ``ResNet50``); ``conv2`` then has stride 1. The shortcut projection
    has the stride in both versions. Parameters are identical; only the computation differs
    (v1's strided 1x1 conv ignores three quarters of the input positions, whereas v1.5's
    strided 3x3 conv still reads all of them).

    Attributes:
      features: bottleneck width; the block outputs ``expansion * features = 4 * features``.
      strides: stride of ``conv2`` (or of ``conv1`` with ``stride_in_1x1``; 1 or 2).
      shortcut: ``"projection"``, ``"pad"`` or ``"none"``.
      zero_init_residual: initialise ``bn3``'s scale to zero.
      conv: the conv constructor (see :class:`BasicBlock`).
      norm: the BatchNorm constructor (see :class:`BasicBlock`).
      stride_in_1x1: put the stride on ``conv1`` (ResNet v1) instead of ``conv2`` (v1.5).
    """

    stride_in_1x1: bool = False

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the block to NHWC features ``x``; returns ``(batch, H/s, W/s, 4 * features)``."""
        conv, norm = self.conv, self.norm
        s1, s2 = (self.strides, 1) if self.stride_in_1x1 else (1, self.strides)
        y = conv(self.features, (1, 1), strides=s1, padding=pad(0), name="conv1")(x)
        y = nn.relu(norm(use_running_average=not train, name="bn1")(y))
        y = conv(self.features, (3, 3), strides=s2, padding=pad(1), name="conv2")(y)
        y = nn.relu(norm(use_running_average=not train, name="bn2")(y))
        y = conv(self.features * self.expansion, (1, 1), padding=pad(0), name="conv3")(y)
        y = self._last_norm(train, "bn3")(y)
        return self._residual(x, y, train)
