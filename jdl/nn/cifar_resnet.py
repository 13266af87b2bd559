"""He et al.'s CIFAR-10 ResNets (2016, Section 4.2) and their plain counterparts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn._checks import check_positive_int, is_int
from jdl.nn._layers import (
    batch_norm_of,
    bias_free_conv,
    image_batch,
    pad,
    pooled_head,
    residual_stages,
)
from jdl.nn.init import get_initializer
from jdl.nn.resnet_blocks import BasicBlock

__all__ = ["CifarResNet"]


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
      bn_running_var: how BatchNorm updates its running variance in training:
        ``"biased"`` (the batch's biased variance, Flax's convention) or
        ``"unbiased"`` (``n / (n - 1)`` times it, PyTorch's, for train-mode parity).
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
    bn_running_var: str = "biased"
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
        x = image_batch(self, "CifarResNet", x, "conv1")
        conv = bias_free_conv(self.kernel_init, self.dtype, self.param_dtype)
        norm = batch_norm_of(self)
        x = conv(self.width, (3, 3), padding=pad(1), name="conv1")(x)
        x = nn.relu(norm(use_running_average=not train, name="bn1")(x))
        shortcut = "none" if self.plain else {"A": "pad", "B": "projection"}[self.shortcut]
        x = residual_stages(
            x,
            BasicBlock,
            (self.blocks_per_stage,) * 3,
            self.width,
            train=train,
            conv=conv,
            norm=norm,
            shortcut=shortcut,
            zero_init_residual=self.zero_init_residual,
        )
        return pooled_head(self, x)
