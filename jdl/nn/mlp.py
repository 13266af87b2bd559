"""Multi-layer perceptron with optional BatchNorm, dropout and residual connections."""

from __future__ import annotations

import math
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
    rank_error,
    to_dtype,
)
from jdl.nn._layers import Dropout, batch_norm, uses_dropout
from jdl.nn.activations import get_activation
from jdl.nn.init import get_initializer

__all__ = ["MLP"]


class MLP(nn.Module):
    """A fully connected network: hidden layers, then a linear output layer.

    Every input example is flattened, so inputs may be ``(batch, features)`` or
    ``(batch, *feature_dims)`` (e.g. ``(batch, 8, 8)`` images). Hidden layer ``i`` computes
    ``Dense -> BatchNorm (if batch_norm) -> activation -> Dropout (if dropout > 0)``; the output
    layer is a Dense of ``num_outputs`` units followed by ``output_activation``.

    With ``residual=True`` (or ``"post"``), a hidden layer whose input and output widths match
    adds its input to its output, ``h = h + f(h)`` with ``f`` the whole layer above. The first
    hidden layer (the projection of the input) never has a skip, so
    ``MLP(widths=(64,) * 100, residual=True)`` is a 100-layer net with 99 skips and the same
    parameters as without them.

    With ``residual="pre"`` the skips carry the *pre-activations* instead (the "identity
    mapping" / pre-activation ordering of He et al. 2016b): ``z_1 = Dense_0(x)``, then
    ``z = z + Dense_i(act(z))`` (``act(BatchNorm_{i-1}(z))`` with BatchNorm, dropout after the
    activation), and the output layer reads ``act(z)`` (``act(BatchNorm_{L-1}(z))``). The
    stream ``z`` is a sum of zero-mean Dense outputs, so it does not drift even when the
    activation's mean is not zero (sigmoid), which makes very deep BatchNorm-free residual
    nets trainable. Parameter names and shapes are the same as in the other modes
    (``BatchNorm_i`` normalises the stream after ``Dense_i``). Without BatchNorm, the stream
    after each skipped layer is sown as ``"Dense_i:preactivation"`` in the
    ``"intermediates"`` collection, which is where :mod:`jdl.analysis` reads the tensor the
    activation is applied to.

    Parameter names (stable, used as keys by ``jdl.analysis`` and ``jdl.pretrained``), in
    forward order: ``Dense_0``, ``BatchNorm_0``, ``Dense_1``, ``BatchNorm_1``, ...,
    ``Dense_{L-1}``, ``BatchNorm_{L-1}`` for the ``L = len(widths)`` hidden layers (BatchNorm
    only with ``batch_norm=True``), then ``head``. BatchNorm running statistics live in the
    ``"batch_stats"`` collection under the same ``BatchNorm_i`` names.

    Attributes:
      widths: hidden layer widths, input side first; ``()`` gives a linear/logistic model.
      num_outputs: size of the output (number of logits or regression targets).
      activation: hidden activation, a name for :func:`jdl.nn.get_activation` or a callable.
      kernel_init: kernel initialiser (all layers, head included), a name/stddev for
        :func:`jdl.nn.get_initializer` or a callable.
      bias_init: bias initialiser, as ``kernel_init``.
      dropout: dropout rate after each hidden activation, in ``[0, 1)``; uses the ``"dropout"``
        RNG stream in training and is the identity in evaluation.
      batch_norm: insert BatchNorm between each hidden Dense and its activation.
      residual: skip connections around hidden layers whose widths match: ``False`` (none),
        ``True`` or ``"post"`` (``h + act(Dense(h))``), ``"pre"`` (``z + Dense(act(z))``).
      output_activation: applied to the output (``None`` = identity, i.e. logits).
      dtype: computation dtype (e.g. ``jnp.bfloat16``); outputs have this dtype.
      param_dtype: dtype of the parameters.
      bn_momentum: BatchNorm running-average momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
      bn_running_var: how BatchNorm updates its running variance in training:
        ``"biased"`` (the batch's biased variance, Flax's convention) or
        ``"unbiased"`` (``n / (n - 1)`` times it, PyTorch's, for train-mode parity).
      bn_axis_name: mapped axis name over which BatchNorm averages statistics under
        ``pmap``/``shard_map`` (``None`` under plain ``jit``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = MLP(widths=(100, 100), num_outputs=10)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 40)), train=False)
      >>> model.apply(variables, jnp.ones((5, 40)), train=False).shape
      (5, 10)
    """

    widths: Sequence[int]
    num_outputs: int
    activation: str | Callable[[jax.Array], jax.Array] = "relu"
    kernel_init: str | float | Callable[..., jax.Array] = "lecun"
    bias_init: str | float | Callable[..., jax.Array] = "zeros"
    dropout: float = 0.0
    batch_norm: bool = False
    residual: bool | str = False
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
        check_positive_ints("MLP", "widths", self.widths)
        check_positive_int("MLP", "num_outputs", self.num_outputs)
        check_rate("MLP dropout", self.dropout)
        if not (isinstance(self.residual, bool) or self.residual in ("post", "pre")):
            raise ValueError(
                f"MLP residual must be False, True, 'post' or 'pre'; got {self.residual!r}"
            )
        get_activation(self.activation)
        get_activation(self.output_activation)
        get_initializer(self.kernel_init)
        get_initializer(self.bias_init)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the network.

        Args:
          x: inputs of shape ``(batch, features)`` or ``(batch, *feature_dims)``.
          train: training mode (dropout active, BatchNorm uses and updates batch statistics;
            pass ``mutable=["batch_stats"]`` to ``apply``) or evaluation mode.

        Returns:
          Outputs of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: if ``x`` has fewer than 2 dimensions or no features, or (for an
            initialised model) its number of features per example differs from the one the
            model was built for.
        """
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise rank_error("MLP", "(batch, features) or (batch, *feature_dims)", x.shape)
        original_shape = x.shape
        h = to_dtype(flatten_examples(x), self.dtype)
        features = h.shape[-1]
        if features == 0:
            raise ValueError(
                f"MLP expects inputs with at least one feature per example; got shape "
                f"{tuple(original_shape)}"
            )
        first = "Dense_0" if self.widths else self.head_name

        def mismatch(expected: int) -> str:
            flat = (
                ""
                if len(original_shape) == 2
                else f" ({math.prod(original_shape[1:])} after flattening)"
            )
            return (
                f"MLP expects inputs with {expected} features per example (shape (batch, "
                f"{expected})), got shape {tuple(original_shape)}{flat}"
            )

        check_param_dim(self, (first, "kernel"), 0, features, mismatch)

        act = get_activation(self.activation)
        dense = dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=get_initializer(self.kernel_init),
            bias_init=get_initializer(self.bias_init),
        )
        if self.residual == "pre":
            h = self._preactivation_layers(h, act, dense, train)
        else:
            for i, width in enumerate(self.widths):
                y = nn.Dense(width, name=f"Dense_{i}", **dense)(h)
                if self.batch_norm:
                    y = batch_norm(self, train=train, name=f"BatchNorm_{i}")(y)
                y = act(y)
                if uses_dropout(self.dropout):
                    y = Dropout(self.dropout, deterministic=not train)(y)
                h = h + y if self.residual and i > 0 and h.shape[-1] == width else y
        out = nn.Dense(self.num_outputs, name=self.head_name, **dense)(h)
        return get_activation(self.output_activation)(out)

    def _preactivation_layers(
        self, h: jax.Array, act: Callable, dense: dict[str, Any], train: bool
    ) -> jax.Array:
        """Hidden layers of ``residual="pre"``; returns the activation the head reads."""

        def activate(z: jax.Array, i: int) -> jax.Array:
            if self.batch_norm:
                z = batch_norm(self, train=train, name=f"BatchNorm_{i}")(z)
            a = act(z)
            if uses_dropout(self.dropout):
                a = Dropout(self.dropout, deterministic=not train)(a)
            return a

        if not self.widths:
            return h
        z = nn.Dense(self.widths[0], name="Dense_0", **dense)(h)
        for i, width in enumerate(self.widths[1:], start=1):
            y = nn.Dense(width, name=f"Dense_{i}", **dense)(activate(z, i - 1))
            z = z + y if z.shape[-1] == width else y
            if not self.batch_norm:
                self.sow("intermediates", f"Dense_{i}:preactivation", z)
        return activate(z, len(self.widths) - 1)
