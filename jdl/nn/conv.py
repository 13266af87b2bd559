"""Convolutional networks over 1-D sequences and 2-D images."""

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
    per_layer,
    rank_error,
    to_dtype,
)
from jdl.nn._layers import Dropout, batch_norm, uses_dropout
from jdl.nn.activations import get_activation
from jdl.nn.init import get_initializer

__all__ = ["CNN"]

_POOLS = ("max", "avg")
_PAD_NAMES = ("SAME", "VALID")


def _window(name: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``ndim`` ints -> a tuple of ``ndim`` ints >= ``minimum``."""
    values = (value,) * ndim if is_int(value) else tuple(value)
    if len(values) != ndim or not all(is_int(v) and v >= minimum for v in values):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a tuple of {ndim} such ints "
            f"(one per spatial dim), got {value!r}"
        )
    return values


def _padding(value: Any, ndim: int) -> str | tuple[tuple[int, int], ...]:
    """'SAME' / 'VALID' / int / tuple of ``ndim`` ints -> lax-style padding."""
    if isinstance(value, str):
        if value.upper() not in _PAD_NAMES:
            raise ValueError(
                f"padding must be one of {', '.join(_PAD_NAMES)}, an int or a tuple of {ndim} "
                f"ints, got {value!r}"
            )
        return value.upper()
    pads = _window("padding", value, ndim, minimum=0)
    return tuple((p, p) for p in pads)


def conv_layer_specs(
    num_layers: int, ndim: int, kernel_size: Any, strides: Any, padding: Any
) -> list[tuple[tuple[int, ...], tuple[int, ...], Any]]:
    """Normalise per-layer (kernel, strides, padding) settings of a conv stack.

    Each of ``kernel_size``, ``strides`` and ``padding`` is either one setting for every layer
    or a sequence with one setting per layer. A setting is an int (the same in every spatial
    dim) or a tuple of ``ndim`` ints; ``padding`` may also be ``"SAME"`` or ``"VALID"``.
    """
    kernels = per_layer("kernel_size", kernel_size, num_layers, is_int)
    strides_ = per_layer("strides", strides, num_layers, is_int)
    pads = per_layer("padding", padding, num_layers, lambda v: is_int(v) or isinstance(v, str))
    return [
        (_window("kernel_size", k, ndim, 1), _window("strides", s, ndim, 1), _padding(p, ndim))
        for k, s, p in zip(kernels, strides_, pads, strict=True)
    ]


class CNN(nn.Module):
    """A stack of 1-D or 2-D convolutions followed by a dense head.

    Each conv layer ``i`` computes ``Conv -> BatchNorm (if batch_norm) -> activation ->
    pooling (if pool)``. The feature maps are then averaged over space (``global_pool=True``)
    or flattened (spatial positions first, channels last: ``(length, channels)`` or
    ``(height, width, channels)``), and fed to the head: ``Dropout -> Dense -> activation`` for
    each width in ``dense``, then ``Dropout -> Dense(num_outputs)`` (Dropout only when
    ``dropout > 0``).

    Inputs are channels-last. With ``ndim=1``: ``(batch, length)`` (a channel axis of size 1 is
    added) or ``(batch, length, channels)``. With ``ndim=2``: ``(batch, height, width)`` or
    ``(batch, height, width, channels)``.

    ``kernel_size``, ``strides`` and ``padding`` each take one setting for all layers or a
    sequence with one setting per conv layer; a setting is an int (the same along every
    spatial dim) or a tuple of ``ndim`` ints, and ``padding`` may also be ``"SAME"`` or
    ``"VALID"``. An int padding ``p`` pads ``p`` zeros on both sides, like PyTorch.

    Parameter names, in forward order: ``Conv_0``, ``BatchNorm_0``, ..., ``Conv_{L-1}``,
    ``BatchNorm_{L-1}`` (BatchNorm only with ``batch_norm=True``), ``Dense_0``, ...,
    ``Dense_{M-1}`` for the ``M = len(dense)`` hidden head layers, then ``head``.

    The MNIST-1D paper's CNN (Greydanus 2020), 5,210 parameters on length-40 inputs,
    ``jdl.nn.get_model("mnist1d_cnn")``::

        CNN(features=(25, 25, 25), kernel_size=(5, 3, 3), strides=2, padding=1, ndim=1,
            num_outputs=10)

    Attributes:
      features: output channels of each conv layer.
      num_outputs: size of the output (number of logits or regression targets).
      ndim: number of spatial dimensions, 1 or 2.
      kernel_size: conv window size(s).
      strides: conv stride(s).
      padding: conv padding(s).
      pool: ``None``, ``"max"`` or ``"avg"``: pooling after every conv layer.
      pool_size: pooling window and stride (int or tuple of ``ndim`` ints); no padding.
      dense: widths of the hidden Dense layers of the head.
      global_pool: average over space before the head instead of flattening, which makes the
        model independent of the input's spatial size.
      activation: activation after every conv and hidden Dense layer (name or callable).
      kernel_init: kernel initialiser of every layer (name, stddev or callable).
      bias_init: bias initialiser of every layer.
      batch_norm: BatchNorm after every conv layer.
      dropout: dropout rate on the inputs of each Dense layer of the head, in ``[0, 1)``.
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
      >>> model = CNN(features=(8, 16), num_outputs=10, pool="max", global_pool=True)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 28, 28)), train=False)
      >>> model.apply(variables, jnp.ones((4, 28, 28)), train=False).shape
      (4, 10)
    """

    features: Sequence[int]
    num_outputs: int
    ndim: int = 2
    kernel_size: int | Sequence[Any] = 3
    strides: int | Sequence[Any] = 1
    padding: str | int | Sequence[Any] = "SAME"
    pool: str | None = None
    pool_size: int | Sequence[int] = 2
    dense: Sequence[int] = ()
    global_pool: bool = False
    activation: str | Callable[[jax.Array], jax.Array] = "relu"
    kernel_init: str | float | Callable[..., jax.Array] = "lecun"
    bias_init: str | float | Callable[..., jax.Array] = "zeros"
    batch_norm: bool = False
    dropout: float = 0.0
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
        if self.ndim not in (1, 2):
            raise ValueError(f"CNN ndim must be 1 or 2 (spatial dims), got {self.ndim!r}")
        check_positive_ints("CNN", "features", self.features)
        check_positive_ints("CNN", "dense", self.dense)
        check_positive_int("CNN", "num_outputs", self.num_outputs)
        if self.pool is not None and self.pool not in _POOLS:
            raise ValueError(f"CNN pool must be None, 'max' or 'avg', got {self.pool!r}")
        _window("pool_size", self.pool_size, self.ndim, 1)
        conv_layer_specs(
            len(self.features), self.ndim, self.kernel_size, self.strides, self.padding
        )
        check_rate("CNN dropout", self.dropout)
        get_activation(self.activation)
        get_activation(self.output_activation)
        get_initializer(self.kernel_init)
        get_initializer(self.bias_init)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the network.

        Args:
          x: channels-last inputs, see the class docstring for the accepted shapes.
          train: training mode (dropout active, BatchNorm uses and updates batch statistics;
            pass ``mutable=["batch_stats"]`` to ``apply``) or evaluation mode.

        Returns:
          Outputs of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: if ``x`` has the wrong rank, no channels or a spatial size too small
            for the conv stack, or (for an initialised model) a number of channels, or a
            flattened size, other than the one the model was built for.
        """
        x = jnp.asarray(x)
        input_shape = x.shape
        spatial = ("length",) if self.ndim == 1 else ("height", "width")
        expected = f"(batch, {', '.join(spatial)}) or (batch, {', '.join(spatial)}, channels)"
        if x.ndim == self.ndim + 1:
            x = x[..., None]
        elif x.ndim != self.ndim + 2:
            raise rank_error(f"CNN(ndim={self.ndim})", expected, x.shape)
        if x.shape[-1] == 0:
            raise ValueError(
                f"CNN(ndim={self.ndim}) expects inputs with at least 1 channel, shape {expected}; "
                f"got shape {tuple(input_shape)}, with no channels"
            )
        x = to_dtype(x, self.dtype)

        if self.features:
            check_param_dim(
                self,
                ("Conv_0", "kernel"),
                -2,
                x.shape[-1],
                lambda c: (
                    f"CNN expects inputs with {c} channels (shape (batch, "
                    f"{', '.join(spatial)}, {c})), got shape {tuple(input_shape)}"
                ),
            )
        act = get_activation(self.activation)
        kinit = get_initializer(self.kernel_init)
        binit = get_initializer(self.bias_init)
        specs = conv_layer_specs(
            len(self.features), self.ndim, self.kernel_size, self.strides, self.padding
        )
        pool_window = _window("pool_size", self.pool_size, self.ndim, 1)
        for i, (width, (kernel, stride, pad)) in enumerate(zip(self.features, specs, strict=True)):
            x = nn.Conv(
                width,
                kernel,
                strides=stride,
                padding=pad,
                kernel_init=kinit,
                bias_init=binit,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"Conv_{i}",
            )(x)
            if self.batch_norm:
                x = batch_norm(self, train=train, name=f"BatchNorm_{i}")(x)
            x = act(x)
            if self.pool == "max":
                x = nn.max_pool(x, pool_window, strides=pool_window, padding="VALID")
            elif self.pool == "avg":
                x = nn.avg_pool(x, pool_window, strides=pool_window, padding="VALID")
            if any(d == 0 for d in x.shape[1:-1]):
                raise ValueError(
                    f"CNN input of shape {tuple(input_shape)} is too small: after conv layer "
                    f"{i} its spatial shape is {x.shape[1:-1]}"
                )

        if self.global_pool:
            h = jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
        else:
            h = flatten_examples(x)
        first = "Dense_0" if self.dense else self.head_name
        check_param_dim(
            self,
            (first, "kernel"),
            0,
            h.shape[-1],
            lambda n: (
                f"CNN head expects {n} features after the conv stack, got {h.shape[-1]} "
                f"(conv output shape {x.shape[1:]}) from inputs of shape {tuple(input_shape)}: "
                "the model was initialised on inputs of another spatial size (use that size, "
                "or global_pool=True for a size-independent model)"
            ),
        )
        return dense_head(self, h, self.dense, train=train, act=act, kinit=kinit, binit=binit)


def dense_head(
    module: nn.Module,
    h: jax.Array,
    widths: Sequence[int],
    *,
    train: bool,
    act: Callable[[jax.Array], jax.Array],
    kinit: Callable[..., jax.Array],
    binit: Callable[..., jax.Array],
) -> jax.Array:
    """``[Dropout -> Dense_i -> act]`` per width, then ``Dropout -> head`` (inside ``module``)."""
    for i, width in enumerate(widths):
        if uses_dropout(module.dropout):
            h = Dropout(module.dropout, deterministic=not train)(h)
        h = nn.Dense(
            width,
            kernel_init=kinit,
            bias_init=binit,
            dtype=module.dtype,
            param_dtype=module.param_dtype,
            name=f"Dense_{i}",
        )(h)
        h = act(h)
    if uses_dropout(module.dropout):
        h = Dropout(module.dropout, deterministic=not train)(h)
    out = nn.Dense(
        module.num_outputs,
        kernel_init=kinit,
        bias_init=binit,
        dtype=module.dtype,
        param_dtype=module.param_dtype,
        name=module.head_name,
    )(h)
    return get_activation(module.output_activation)(out)
