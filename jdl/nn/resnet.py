"""Residual networks: ImageNet ResNets (v1.5 and v1) and He et al.'s CIFAR ResNets.

The ImageNet models mirror torchvision's module tree so that a state dict maps one-to-one:
torchvision's ``layer2.0.downsample.1.running_var`` is ``batch_stats/layer2_0/downsample_bn/var``
here, ``layer3.1.conv2.weight`` is ``params/layer3_1/conv2/kernel`` (OIHW -> HWIO), ``bn1.weight``
is ``params/bn1/scale``, and ``fc.weight`` is ``params/fc/kernel`` transposed. Convolutions
have no bias; BatchNorm uses epsilon 1e-5 and momentum 0.9 (PyTorch's 0.1). All padding is
explicit and symmetric as in PyTorch (never ``"SAME"``, which pads (0, 1) on even sizes).

The blocks live in :mod:`jdl.nn.resnet_blocks`, the CIFAR ResNets in
:mod:`jdl.nn.cifar_resnet`; all their names are importable from here too.

v1 and v1.5: the bottleneck blocks of the original ResNet (He et al. 2016, Caffe; Keras'
``ResNet50``) put the stride of a downsampling block on the *first* 1x1 conv; torchvision
(NVIDIA's "ResNet v1.5") put it on the 3x3 conv, slightly more accurate and slightly
slower. jdl's default is v1.5; ``stride_in_1x1=True`` gives v1. Both have the same
parameters (names and shapes), so only the computation differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn._checks import check_positive_int, check_positive_ints
from jdl.nn._layers import (
    batch_norm_of,
    bias_free_conv,
    image_batch,
    pad,
    pooled_head,
    residual_stages,
)
from jdl.nn.cifar_resnet import CifarResNet as CifarResNet  # re-exported
from jdl.nn.init import get_initializer
from jdl.nn.resnet_blocks import SHORTCUTS as SHORTCUTS  # re-exported
from jdl.nn.resnet_blocks import BasicBlock, Bottleneck

__all__ = ["ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


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
      bn_running_var: how BatchNorm updates its running variance in training:
        ``"biased"`` (the batch's biased variance, Flax's convention) or
        ``"unbiased"`` (``n / (n - 1)`` times it, PyTorch's, for train-mode parity).
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
    bn_running_var: str = "biased"
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
        x = image_batch(self, "ResNet", x, "conv1")
        conv = bias_free_conv(self.kernel_init, self.dtype, self.param_dtype)
        norm = batch_norm_of(self)
        x = conv(self.width, (7, 7), strides=2, padding=pad(3), name="conv1")(x)
        x = nn.relu(norm(use_running_average=not train, name="bn1")(x))
        # nn.max_pool pads with -inf (the reduction's identity), so pads never win the max.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pad(1))
        extra = {"stride_in_1x1": self.stride_in_1x1} if self.block_cls is Bottleneck else {}
        x = residual_stages(
            x,
            self.block_cls,
            self.stage_sizes,
            self.width,
            train=train,
            conv=conv,
            norm=norm,
            shortcut="projection",
            zero_init_residual=self.zero_init_residual,
            **extra,
        )
        return pooled_head(self, x)


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
