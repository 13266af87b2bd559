"""Residual networks: ImageNet ResNets (v1.5 and v1) and He et al.'s CIFAR ResNets.

The ImageNet models mirror torchvision's module tree so that a state dict maps one-to-one:
torchvision's ``layer2.0.downsample.1.running_var`` is ``batch_stats/layer2_0/downsample_bn/var``
here, ``layer3.1.conv2.weight`` is ``params/layer3_1/conv2/kernel`` (OIHW -> HWIO), ``bn1.weight``
is ``params/bn1/scale``, and ``fc.weight`` is ``params/fc/kernel`` transposed. Convolutions
have no bias; BatchNorm uses epsilon 1e-5 and momentum 0.9 (PyTorch's 0.1). All padding is
explicit and symmetric as in PyTorch (never ``"SAME"``, which pads (0, 1) on even sizes).

v1 and v1.5: the bottleneck blocks of the original ResNet (He et al. 2016, Caffe; Keras'
``ResNet50``) put the stride of a downsampling block on the *first* 1x1 conv; torchvision
(NVIDIA's "ResNet v1.5") put it on the 3x3 conv, slightly more accurate and slightly
slower. jdl's default is v1.5; ``stride_in_1x1=True`` gives v1. Both have the same
parameters (names and shapes), so only the computation differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn._checks import (
    check_param_dim,
    check_positive_int,
    check_positive_ints,
    is_int,
    rank_error,
    to_dtype,
)
from jdl.nn.init import get_initializer

__all__ = [
    "SHORTCUTS",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]

#: Shortcut kinds of the residual blocks (see :class:`BasicBlock`).
SHORTCUTS = ("projection", "pad", "none")


def _pad(p: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return ((p, p), (p, p))


class _Block(nn.Module):
    """Fields and helpers shared by :class:`BasicBlock` and :class:`Bottleneck`."""

    features: int
    strides: int = 1
    shortcut: str = "projection"
    zero_init_residual: bool = False
    kernel_init: str | float | Callable[..., jax.Array] = "he_fan_out"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None

    expansion: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(
                f"unknown shortcut {self.shortcut!r}; valid shortcuts are {', '.join(SHORTCUTS)}"
            )
        if self.strides not in (1, 2):
            raise ValueError(f"residual block strides must be 1 or 2, got {self.strides!r}")
        super().__post_init__()

    def _conv(self) -> Callable[..., nn.Conv]:
        return partial(
            nn.Conv,
            use_bias=False,
            kernel_init=get_initializer(self.kernel_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def _norm(self, train: bool) -> Callable[..., nn.BatchNorm]:
        return partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def _last_norm(self, train: bool) -> Callable[..., nn.BatchNorm]:
        scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        return partial(self._norm(train), scale_init=scale)

    def _residual(self, x: jax.Array, y: jax.Array, train: bool) -> jax.Array:
        """``relu(y + shortcut(x))``, or ``relu(y)`` for ``shortcut="none"``."""
        if self.shortcut == "none":
            return nn.relu(y)
        out_features = y.shape[-1]
        if self.strides == 1 and x.shape[-1] == out_features:
            return nn.relu(y + x)
        s = self.strides
        if self.shortcut == "projection":
            x = self._conv()(
                out_features, (1, 1), strides=s, padding=_pad(0), name="downsample_conv"
            )(x)
            x = self._norm(train)(name="downsample_bn")(x)
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
      kernel_init: conv kernel initialiser (default He normal with fan-out, as torchvision).
      dtype: computation dtype.
      param_dtype: parameter dtype.
      bn_momentum: BatchNorm momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
      bn_axis_name: mapped axis name for BatchNorm statistics under ``pmap``/``shard_map``.
    """

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the block to NHWC features ``x``; returns ``(batch, H / s, W / s, features)``."""
        conv, norm = self._conv(), self._norm(train)
        y = conv(self.features, (3, 3), strides=self.strides, padding=_pad(1), name="conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = conv(self.features, (3, 3), padding=_pad(1), name="conv2")(y)
        y = self._last_norm(train)(name="bn2")(y)
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
      kernel_init: conv kernel initialiser.
      dtype: computation dtype.
      param_dtype: parameter dtype.
      bn_momentum: BatchNorm momentum.
      bn_epsilon: BatchNorm epsilon.
      bn_axis_name: mapped axis name for BatchNorm statistics under ``pmap``/``shard_map``.
      stride_in_1x1: put the stride on ``conv1`` (ResNet v1) instead of ``conv2`` (v1.5).
    """

    stride_in_1x1: bool = False

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the block to NHWC features ``x``; returns ``(batch, H/s, W/s, 4 * features)``."""
        conv, norm = self._conv(), self._norm(train)
        s1, s2 = (self.strides, 1) if self.stride_in_1x1 else (1, self.strides)
        y = conv(self.features, (1, 1), strides=s1, padding=_pad(0), name="conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = conv(self.features, (3, 3), strides=s2, padding=_pad(1), name="conv2")(y)
        y = nn.relu(norm(name="bn2")(y))
        y = conv(self.features * self.expansion, (1, 1), padding=_pad(0), name="conv3")(y)
        y = self._last_norm(train)(name="bn3")(y)
        return self._residual(x, y, train)


def _images(model: str, x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise rank_error(
            model, "(batch, height, width, channels) or (batch, height, width)", x.shape
        )
    return x


def _check_channels(module: nn.Module, model: str, x: jax.Array, shape: tuple[int, ...]) -> None:
    check_param_dim(
        module,
        ("conv1", "kernel"),
        -2,
        x.shape[-1],
        lambda c: (
            f"{model} expects images with {c} channels (shape (batch, height, width, {c})), "
            f"got shape {tuple(shape)}"
        ),
    )


class ResNet(nn.Module):
    """ImageNet-style ResNet v1.5 or v1 (He et al. 2016; torchvision's layout and padding).

    Stem: ``conv1`` 7x7 stride 2 padding 3 -> ``bn1`` -> relu -> 3x3 max-pool stride 2
    padding 1 (pads are ignored, as PyTorch does). Then stages ``layer1`` ... ``layer4`` of
    ``stage_sizes[s]`` blocks with ``width * 2^s`` features; the first block of stages 2-4 has
    stride 2 and a projection shortcut (also stage 1 of bottleneck nets, to widen the
    channels). Global average pooling, then ``fc``. Spatial sizes follow PyTorch's formula
    ``floor((n + 2p - k) / s) + 1``: 224 -> 112 -> 56 -> 56 -> 28 -> 14 -> 7.

    Parameter names (torchvision's with ``.`` -> ``_`` between layer and block index):
    ``conv1``, ``bn1``, ``layer{s}_{i}`` (``s`` from 1, ``i`` from 0) with children ``conv1``,
    ``bn1``, ``conv2``, ``bn2``, (``conv3``, ``bn3``), (``downsample_conv``,
    ``downsample_bn``), and ``fc``.

    Initialisation follows torchvision: convs He normal with fan-out, BatchNorm scale 1 and
    bias 0, ``fc`` kernel U(-1/sqrt(n_in), 1/sqrt(n_in)) (``"standard"``) and zero bias.

    ``stride_in_1x1=True`` makes the bottleneck blocks ResNet v1 (see :class:`Bottleneck`);
    Keras' ``ResNet50`` is ``ResNet((3, 4, 6, 3), Bottleneck, stride_in_1x1=True,
    bn_epsilon=1.001e-5)`` (its conv biases are folded into the BatchNorms on loading, see
    :func:`jdl.pretrained.from_keras`). BasicBlock's first conv is its 3x3 conv, which
    already carries the stride, so ``stride_in_1x1=True`` with ``BasicBlock`` is an error.

    Attributes:
      stage_sizes: number of blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
      block_cls: :class:`BasicBlock` or :class:`Bottleneck`.
      num_outputs: number of classes (size of ``fc``).
      width: channels of the stem and of the first stage's blocks (64).
      zero_init_residual: zero-initialise the last BatchNorm scale of every block.
      kernel_init: conv kernel initialiser.
      fc_init: ``fc`` kernel initialiser.
      dtype: computation dtype (e.g. ``jnp.bfloat16``); outputs have this dtype.
      param_dtype: parameter dtype.
      bn_momentum: BatchNorm momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
      bn_axis_name: mapped axis name for BatchNorm statistics under ``pmap``/``shard_map``.
      stride_in_1x1: ResNet v1 bottlenecks (stride on ``conv1``) instead of v1.5 (``conv2``);
        ``Bottleneck`` only.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = resnet18(num_outputs=10)
      >>> init = lambda x: model.init(jax.random.key(0), x, train=False)
      >>> shapes = jax.eval_shape(init, jnp.ones((1, 224, 224, 3)))
      >>> shapes["params"]["layer2_0"]["downsample_conv"]["kernel"].shape
      (1, 1, 64, 128)
    """

    stage_sizes: Sequence[int]
    block_cls: type[BasicBlock] | type[Bottleneck] = BasicBlock
    num_outputs: int = 1000
    width: int = 64
    zero_init_residual: bool = False
    kernel_init: str | float | Callable[..., jax.Array] = "he_fan_out"
    fc_init: str | float | Callable[..., jax.Array] = "standard"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None
    stride_in_1x1: bool = False

    #: Name of the output layer (what ``jdl.pretrained.replace_head`` swaps).
    head_name: ClassVar[str] = "fc"

    def __post_init__(self) -> None:
        if self.block_cls not in (BasicBlock, Bottleneck):
            raise ValueError(
                f"ResNet block_cls must be BasicBlock or Bottleneck, got {self.block_cls!r}"
            )
        if self.stride_in_1x1 and self.block_cls is not Bottleneck:
            raise ValueError(
                "ResNet stride_in_1x1=True (ResNet v1) applies to Bottleneck blocks only: "
                "BasicBlock's first conv is its 3x3 conv, which already carries the stride; "
                "got block_cls=BasicBlock"
            )
        if not self.stage_sizes:
            raise ValueError("ResNet stage_sizes must list at least one stage, got ()")
        check_positive_ints("ResNet", "stage_sizes", self.stage_sizes)
        for name in ("num_outputs", "width"):
            check_positive_int("ResNet", name, getattr(self, name))
        get_initializer(self.kernel_init)
        get_initializer(self.fc_init)
        super().__post_init__()

    def _block_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            bn_axis_name=self.bn_axis_name,
        )
        if self.block_cls is Bottleneck:
            settings["stride_in_1x1"] = self.stride_in_1x1
        return settings

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Classify a batch of images.

        Args:
          x: images ``(batch, height, width, channels)`` (or ``(batch, height, width)``).
          train: training mode (BatchNorm uses and updates batch statistics; pass
            ``mutable=["batch_stats"]`` to ``apply``) or evaluation mode.

        Returns:
          Logits of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: for a wrong input rank or (for an initialised model) a channel count
            other than the model's.
        """
        shape = jnp.shape(x)
        x = _images("ResNet", x)
        _check_channels(self, "ResNet", x, shape)
        x = to_dtype(x, self.dtype)
        bn = dict(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        x = nn.Conv(
            self.width,
            (7, 7),
            strides=2,
            padding=_pad(3),
            use_bias=False,
            kernel_init=get_initializer(self.kernel_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv1",
        )(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn1", **bn)(x))
        # nn.max_pool pads with -inf (the reduction's identity), so pads never win the max.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=_pad(1))
        for s, num_blocks in enumerate(self.stage_sizes):
            for i in range(num_blocks):
                x = self.block_cls(
                    features=self.width * 2**s,
                    strides=2 if s > 0 and i == 0 else 1,
                    shortcut="projection",
                    zero_init_residual=self.zero_init_residual,
                    kernel_init=self.kernel_init,
                    name=f"layer{s + 1}_{i}",
                    **self._block_settings(),
                )(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(
            self.num_outputs,
            kernel_init=get_initializer(self.fc_init),
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=self.head_name,
        )(x)


def resnet18(num_outputs: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlock stages (2, 2, 2, 2); 11,689,512 parameters at 1000 classes.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`ResNet` attributes (``dtype``, ``zero_init_residual``, ...).

    Returns:
      An unbound :class:`ResNet` module.
    """
    return ResNet((2, 2, 2, 2), BasicBlock, num_outputs=num_outputs, **kwargs)


def resnet34(num_outputs: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlock stages (3, 4, 6, 3); 21,797,672 parameters at 1000 classes.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`ResNet` attributes (``dtype``, ``zero_init_residual``, ...).

    Returns:
      An unbound :class:`ResNet` module.
    """
    return ResNet((3, 4, 6, 3), BasicBlock, num_outputs=num_outputs, **kwargs)


def resnet50(num_outputs: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-50: Bottleneck stages (3, 4, 6, 3); 25,557,032 parameters at 1000 classes.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`ResNet` attributes (``dtype``, ``zero_init_residual``, ...).

    Returns:
      An unbound :class:`ResNet` module.
    """
    return ResNet((3, 4, 6, 3), Bottleneck, num_outputs=num_outputs, **kwargs)


def resnet101(num_outputs: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-101: Bottleneck stages (3, 4, 23, 3); 44,549,160 parameters at 1000 classes.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`ResNet` attributes (``dtype``, ``zero_init_residual``, ...).

    Returns:
      An unbound :class:`ResNet` module.
    """
    return ResNet((3, 4, 23, 3), Bottleneck, num_outputs=num_outputs, **kwargs)


def resnet152(num_outputs: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-152: Bottleneck stages (3, 8, 36, 3); 60,192,808 parameters at 1000 classes.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`ResNet` attributes (``dtype``, ``zero_init_residual``, ...).

    Returns:
      An unbound :class:`ResNet` module.
    """
    return ResNet((3, 8, 36, 3), Bottleneck, num_outputs=num_outputs, **kwargs)


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNets of He et al. (2016, Section 4.2), and their plain counterparts.

    ``conv1`` (3x3, 16 channels, padding 1) -> ``bn1`` -> relu, then three stages
    ``layer1``-``layer3`` of ``n = (depth - 2) / 6`` :class:`BasicBlock` s with 16, 32 and 64
    channels (feature maps 32, 16 and 8 on 32 x 32 inputs; stride 2 on the first block of
    stages 2 and 3), global average pooling and ``fc``. ``depth`` counts the weighted layers:
    ``6n`` convs, the stem and ``fc``.

    Shortcuts where the shape changes: ``shortcut="A"`` (the paper's CIFAR choice) is
    parameter-free, a stride-2 subsampling with zero-padded extra channels; ``"B"`` is a 1x1
    conv + BatchNorm projection. ``plain=True`` removes every skip connection and nothing
    else: the parameter tree is the one of ``shortcut="A"``.

    Parameter counts with option A (published as 0.27M, 0.46M, 0.66M, 0.85M, 1.7M): 269,722 at
    depth 20, 464,154 at 32, 658,586 at 44, 853,018 at 56 and 1,727,962 at 110. Option B adds
    2,752 (272,474 at depth 20).

    Parameter names: ``conv1``, ``bn1``, ``layer{1,2,3}_{i}`` (children ``conv1``, ``bn1``,
    ``conv2``, ``bn2``, and with option B ``downsample_conv``, ``downsample_bn``), ``fc``.

    Attributes:
      depth: ``6n + 2`` (20, 32, 44, 56, 110, 1202, ...).
      num_outputs: number of classes.
      plain: remove all skip connections.
      shortcut: ``"A"`` (zero-padding identity) or ``"B"`` (projection).
      width: channels of the first stage (16); the others have 2x and 4x as many.
      zero_init_residual: zero-initialise every block's ``bn2`` scale.
      kernel_init: conv kernel initialiser (He et al. 2015's, as in the paper).
      fc_init: ``fc`` kernel initialiser.
      dtype: computation dtype (e.g. ``jnp.bfloat16``); outputs have this dtype.
      param_dtype: parameter dtype.
      bn_momentum: BatchNorm momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
      bn_axis_name: mapped axis name for BatchNorm statistics under ``pmap``/``shard_map``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import count_params
      >>> model = CifarResNet(depth=20)
      >>> init = lambda x: model.init(jax.random.key(0), x, train=False)
      >>> count_params(jax.eval_shape(init, jnp.ones((1, 32, 32, 3))))  # no memory used
      269722
    """

    depth: int = 20
    num_outputs: int = 10
    plain: bool = False
    shortcut: str = "A"
    width: int = 16
    zero_init_residual: bool = False
    kernel_init: str | float | Callable[..., jax.Array] = "he"
    fc_init: str | float | Callable[..., jax.Array] = "standard"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None

    #: Name of the output layer (what ``jdl.pretrained.replace_head`` swaps).
    head_name: ClassVar[str] = "fc"

    def __post_init__(self) -> None:
        depth = self.depth
        if not is_int(depth) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                "CifarResNet depth must be 6n + 2 with n >= 1 (e.g. 20, 32, 44, 56, 110), "
                f"got {depth!r}"
            )
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet shortcut must be 'A' or 'B', got {self.shortcut!r}")
        if self.plain and self.shortcut != "A":
            raise ValueError(
                "a plain CifarResNet has no shortcuts, so shortcut must stay 'A' "
                f"(got {self.shortcut!r})"
            )
        for name in ("num_outputs", "width"):
            check_positive_int("CifarResNet", name, getattr(self, name))
        get_initializer(self.kernel_init)
        get_initializer(self.fc_init)
        super().__post_init__()

    def _block_settings(self) -> dict[str, Any]:
        return dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            bn_axis_name=self.bn_axis_name,
        )

    @property
    def blocks_per_stage(self) -> int:
        """``n = (depth - 2) / 6``, the number of blocks in each of the three stages."""
        return (self.depth - 2) // 6

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Classify a batch of images.

        Args:
          x: images ``(batch, height, width, channels)`` (or ``(batch, height, width)``).
          train: training mode (BatchNorm uses and updates batch statistics; pass
            ``mutable=["batch_stats"]`` to ``apply``) or evaluation mode.

        Returns:
          Logits of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: for a wrong input rank or (for an initialised model) a channel count
            other than the model's.
        """
        shape = jnp.shape(x)
        x = _images("CifarResNet", x)
        _check_channels(self, "CifarResNet", x, shape)
        x = to_dtype(x, self.dtype)
        bn = dict(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        x = nn.Conv(
            self.width,
            (3, 3),
            padding=_pad(1),
            use_bias=False,
            kernel_init=get_initializer(self.kernel_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv1",
        )(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn1", **bn)(x))
        shortcut = "none" if self.plain else {"A": "pad", "B": "projection"}[self.shortcut]
        for s in range(3):
            for i in range(self.blocks_per_stage):
                x = BasicBlock(
                    features=self.width * 2**s,
                    strides=2 if s > 0 and i == 0 else 1,
                    shortcut=shortcut,
                    zero_init_residual=self.zero_init_residual,
                    kernel_init=self.kernel_init,
                    name=f"layer{s + 1}_{i}",
                    **self._block_settings(),
                )(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(
            self.num_outputs,
            kernel_init=get_initializer(self.fc_init),
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=self.head_name,
        )(x)
