"""VGG networks (Simonyan & Zisserman 2015), configurations A, B, D and E (VGG-11/13/16/19)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl._core.reduce import flatten_examples
from jdl.nn._checks import (
    check_param_dim,
    check_positive_int,
    check_positive_ints,
    check_rate,
    is_int,
)
from jdl.nn._layers import Dropout, batch_norm, image_batch, pad, uses_dropout
from jdl.nn.activations import get_activation
from jdl.nn.init import get_initializer

__all__ = ["VGG", "VGG_CONFIGS", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_layer_plan"]

#: Conv widths per configuration; ``"M"`` is a 2x2 max-pool with stride 2 (Table 1 of the paper).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
        *(512, 512, 512, "M", 512, 512, 512, "M"),
    ),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ),
}
_ALIASES = {"a": "vgg11", "b": "vgg13", "d": "vgg16", "e": "vgg19"}


def _resolve_config(config: str | Sequence[int | str]) -> tuple[int | str, ...]:
    if isinstance(config, str):
        key = config.strip().lower().replace("-", "")
        key = _ALIASES.get(key, key)
        if key not in VGG_CONFIGS:
            raise ValueError(
                f"unknown VGG configuration {config!r}; valid names are "
                f"{', '.join(VGG_CONFIGS)} (or the paper's letters A, B, D, E), or pass a "
                "sequence of conv widths and 'M' (max-pool)"
            )
        return VGG_CONFIGS[key]
    entries = tuple(config)
    for i, entry in enumerate(entries):
        is_width = is_int(entry) and entry > 0
        if not (is_width or entry == "M"):
            raise ValueError(
                f"VGG config entries must be positive conv widths or 'M', got config[{i}] = "
                f"{entry!r}"
            )
    if not any(is_int(e) for e in entries):
        raise ValueError(f"VGG config needs at least one conv layer, got {config!r}")
    return entries


def vgg_layer_plan(config: str | Sequence[int | str]) -> tuple[tuple[str, int | None], ...]:
    """The layers of a VGG configuration in forward order, as ``(name, conv_width)`` pairs.

    The one place that names VGG layers (:class:`VGG` builds from it; the Keras loader maps
    onto it): ``block{b}_conv{c}`` for conv ``c`` of block ``b`` (both from 1), with its
    width, and ``block{b}_pool`` (width ``None``) for the max-pool that ends block ``b`` —
    Keras' ``VGG16`` layer names. With BatchNorm, conv ``block{b}_conv{c}`` is followed by
    ``block{b}_bn{c}``.

    Args:
      config: a :class:`VGG` ``config``: a name (``"vgg16"``, the paper's ``"D"``, ...) or a
        sequence of conv widths and ``"M"`` (max-pool).

    Returns:
      A tuple of ``(name, width)``; ``width`` is ``None`` for a pool.

    Raises:
      ValueError: an unknown name or an invalid sequence.

    Example:
      >>> for layer in vgg_layer_plan((64, "M", 128, 128, "M")):
      ...     print(layer)
      ('block1_conv1', 64)
      ('block1_pool', None)
      ('block2_conv1', 128)
      ('block2_conv2', 128)
      ('block2_pool', None)
    """
    plan: list[tuple[str, int | None]] = []
    block, conv = 1, 0
    for entry in _resolve_config(config):
        if entry == "M":
            plan.append((f"block{block}_pool", None))
            block, conv = block + 1, 0
        else:
            conv += 1
            plan.append((f"block{block}_conv{conv}", int(entry)))
    return tuple(plan)


class VGG(nn.Module):
    """A VGG network: 3x3 conv blocks separated by max-pools, then a dense classifier.

    Every conv is 3x3 with stride 1 and padding 1, followed by BatchNorm (if ``batch_norm``)
    and ReLU; each ``"M"`` of the configuration is a 2x2 max-pool with stride 2. The final
    feature map is flattened and fed to the classifier: for each width in ``classifier``,
    ``Dense -> activation -> Dropout``, then the output ``Dense(num_outputs)``, as in
    torchvision.

    **Flatten order.** Feature maps are NHWC and flattened in ``(height, width, channels)``
    order, like Keras' ``Flatten``. The classifier's input size is ``C * (H / 2^p) * (W / 2^p)``
    for ``p`` pools: 25,088 = 512 x 7 x 7 at 224 x 224 (the same as torchvision, whose
    ``AdaptiveAvgPool2d((7, 7))`` is the identity at that size), 512 at 32 x 32 (CIFAR).
    torchvision flattens ``(channels, height, width)``: mapping its first classifier weight
    ``(4096, 25088)`` here means reshaping it to ``(4096, 512, 7, 7)``, transposing to
    ``(7, 7, 512, 4096)`` and reshaping to ``(25088, 4096)``. Keras' ``fc1`` kernel maps as is.

    Parameter names, in forward order: ``block{b}_conv{c}`` (and ``block{b}_bn{c}`` with
    BatchNorm) for conv ``c`` of block ``b`` (both from 1; blocks end at each ``"M"``, as in
    Keras' ``block1_conv1``; :func:`vgg_layer_plan` lists them), ``fc1``, ``fc2``, ... for the
    classifier's hidden layers, and ``head`` for the output layer.

    Attributes:
      config: a name (``"vgg11"``, ``"vgg13"``, ``"vgg16"``, ``"vgg19"``, or the paper's
        ``"A"``, ``"B"``, ``"D"``, ``"E"``) or a sequence of conv widths and ``"M"``.
      num_outputs: number of classes (or regression targets).
      batch_norm: BatchNorm after every conv (torchvision's ``vgg*_bn``).
      classifier: widths of the hidden Dense layers; ``(4096, 4096)`` in the paper, e.g.
        ``(512,)`` or ``()`` for small inputs.
      dropout: dropout rate after each hidden Dense layer, in ``[0, 1)``.
      activation: activation after each conv and hidden Dense (name or callable).
      kernel_init: conv kernel initialiser; default He normal with fan-out, as torchvision.
      dense_init: Dense kernel initialiser; default N(0, 0.01^2), as torchvision.
      bias_init: bias initialiser of every layer.
      output_activation: applied to the output (``None`` = identity, i.e. logits).
      dtype: computation dtype (e.g. ``jnp.bfloat16``); outputs have this dtype.
      param_dtype: dtype of the parameters.
      bn_momentum: BatchNorm running-average momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
      bn_running_var: how BatchNorm updates its running variance in training:
        ``"biased"`` (the batch's biased variance, Flax's convention) or
        ``"unbiased"`` (``n / (n - 1)`` times it, PyTorch's, for train-mode parity).
      bn_axis_name: mapped axis name for BatchNorm statistics under ``pmap``/``shard_map``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import count_params
      >>> model = VGG("vgg16", num_outputs=1000)
      >>> init = lambda x: model.init(jax.random.key(0), x, train=False)
      >>> count_params(jax.eval_shape(init, jnp.ones((1, 224, 224, 3))))  # no memory used
      138357544
      >>> cifar = VGG("vgg11", num_outputs=10, classifier=(64,))  # 32 x 32 inputs: 512 features
      >>> init = lambda x: cifar.init(jax.random.key(0), x, train=False)
      >>> jax.eval_shape(init, jnp.ones((1, 32, 32, 3)))["params"]["fc1"]["kernel"].shape
      (512, 64)
    """

    config: str | Sequence[int | str]
    num_outputs: int = 1000
    batch_norm: bool = False
    classifier: Sequence[int] = (4096, 4096)
    dropout: float = 0.5
    activation: str | Callable[[jax.Array], jax.Array] = "relu"
    kernel_init: str | float | Callable[..., jax.Array] = "he_fan_out"
    dense_init: str | float | Callable[..., jax.Array] = "normal(0.01)"
    bias_init: str | float | Callable[..., jax.Array] = "zeros"
    output_activation: str | Callable[[jax.Array], jax.Array] | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_running_var: str = "biased"
    bn_axis_name: str | None = None

    #: Name of the output layer (what ``jdl.pretrained.replace_head`` swaps).
    head_name: ClassVar[str] = "head"

    def __post_init__(self) -> None:
        _resolve_config(self.config)
        check_positive_int("VGG", "num_outputs", self.num_outputs)
        check_positive_ints("VGG", "classifier", self.classifier)
        check_rate("VGG dropout", self.dropout)
        get_activation(self.activation)
        get_activation(self.output_activation)
        for init in (self.kernel_init, self.dense_init, self.bias_init):
            get_initializer(init)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the network.

        Args:
          x: images of shape ``(batch, height, width, channels)``, or ``(batch, height,
            width)`` for one channel. Height and width must survive the pools (>= 2^p).
          train: training mode (dropout active, BatchNorm uses and updates batch statistics;
            pass ``mutable=["batch_stats"]`` to ``apply``) or evaluation mode.

        Returns:
          Outputs of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: for a wrong input rank, an image too small for the pools, or (for an
            initialised model) a channel count or flattened size other than the model's.
        """
        input_shape = jnp.shape(x)
        x = image_batch(self, "VGG", x, "block1_conv1")
        act = get_activation(self.activation)
        kinit = get_initializer(self.kernel_init)
        binit = get_initializer(self.bias_init)
        for name, width in vgg_layer_plan(self.config):
            if width is None:
                if x.shape[1] < 2 or x.shape[2] < 2:
                    block = name.removesuffix("_pool").removeprefix("block")
                    raise ValueError(
                        f"VGG input of shape {tuple(input_shape)} is too small: block {block} "
                        f"ends with spatial shape {x.shape[1:3]}, which a 2x2 max-pool cannot "
                        "reduce"
                    )
                x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
                continue
            x = nn.Conv(
                width,
                (3, 3),
                padding=pad(1),
                kernel_init=kinit,
                bias_init=binit,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )(x)
            if self.batch_norm:
                x = batch_norm(self, train=train, name=name.replace("_conv", "_bn"))(x)
            x = act(x)

        h = flatten_examples(x)
        first = "fc1" if self.classifier else self.head_name
        check_param_dim(
            self,
            (first, "kernel"),
            0,
            h.shape[-1],
            lambda n: (
                f"VGG classifier expects {n} flattened features, got {h.shape[-1]} (feature map "
                f"{x.shape[1:]}) from images of shape {tuple(input_shape)}: the model was "
                "initialised on images of another size"
            ),
        )
        dinit = get_initializer(self.dense_init)
        dense = dict(
            kernel_init=dinit, bias_init=binit, dtype=self.dtype, param_dtype=self.param_dtype
        )
        for i, width in enumerate(self.classifier):
            h = act(nn.Dense(width, name=f"fc{i + 1}", **dense)(h))
            if uses_dropout(self.dropout):
                h = Dropout(self.dropout, deterministic=not train)(h)
        out = nn.Dense(self.num_outputs, name=self.head_name, **dense)(h)
        return get_activation(self.output_activation)(out)


def vgg11(num_outputs: int = 1000, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters at 1000 classes on 224 x 224 inputs.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`VGG` attributes (``batch_norm``, ``classifier``, ``dtype``, ...).

    Returns:
      An unbound :class:`VGG` module.
    """
    return VGG(config="vgg11", num_outputs=num_outputs, **kwargs)


def vgg13(num_outputs: int = 1000, **kwargs: Any) -> VGG:
    """VGG-13 (configuration B): 133,047,848 parameters at 1000 classes on 224 x 224 inputs.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`VGG` attributes (``batch_norm``, ``classifier``, ``dtype``, ...).

    Returns:
      An unbound :class:`VGG` module.
    """
    return VGG(config="vgg13", num_outputs=num_outputs, **kwargs)


def vgg16(num_outputs: int = 1000, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters at 1000 classes on 224 x 224 inputs.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`VGG` attributes (``batch_norm``, ``classifier``, ``dtype``, ...).

    Returns:
      An unbound :class:`VGG` module.
    """
    return VGG(config="vgg16", num_outputs=num_outputs, **kwargs)


def vgg19(num_outputs: int = 1000, **kwargs: Any) -> VGG:
    """VGG-19 (configuration E): 143,667,240 parameters at 1000 classes on 224 x 224 inputs.

    Args:
      num_outputs: number of classes.
      **kwargs: other :class:`VGG` attributes (``batch_norm``, ``classifier``, ``dtype``, ...).

    Returns:
      An unbound :class:`VGG` module.
    """
    return VGG(config="vgg19", num_outputs=num_outputs, **kwargs)
