"""Recurrent sequence classifier over :class:`flax.linen.RNN`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl._core.reduce import flatten_examples
from jdl.nn._checks import (
    check_param_dim,
    check_positive_int,
    check_rate,
    rank_error,
    to_dtype,
)
from jdl.nn._layers import Dropout, uses_dropout
from jdl.nn.activations import get_activation
from jdl.nn.init import get_initializer

__all__ = ["RNN_CELLS", "RNNClassifier"]

#: Cell names accepted by :class:`RNNClassifier`, with the Flax cell each one uses.
RNN_CELLS: dict[str, type[nn.RNNCellBase]] = {
    "simple": nn.SimpleCell,
    "lstm": nn.OptimizedLSTMCell,
    "gru": nn.GRUCell,
}
# Name of each cell's input-to-hidden kernel (its first dimension is the input size).
_INPUT_KERNEL = {"simple": "i", "lstm": "ii", "gru": "ir"}


def _cell_name(cell: str) -> str:
    key = cell.strip().lower() if isinstance(cell, str) else cell
    if key not in RNN_CELLS:
        raise ValueError(f"unknown RNN cell {cell!r}; valid cells are {', '.join(RNN_CELLS)}")
    return key


_READOUTS = ("last", "sequence")


class RNNClassifier(nn.Module):
    """Stacked (optionally bidirectional) RNN whose final hidden state feeds a Dense head.

    Each layer runs a :class:`flax.linen.RNN` (a ``scan`` over time) of the chosen cell:
    ``"simple"`` (:class:`~flax.linen.SimpleCell`, ``h' = tanh(W x + U h + b)``), ``"lstm"``
    (:class:`~flax.linen.OptimizedLSTMCell`, with the same parameters as
    :class:`~flax.linen.LSTMCell`) or ``"gru"`` (:class:`~flax.linen.GRUCell`). The next layer
    reads the previous layer's output sequence. The head reads the last layer's final hidden
    state: with ``lengths``, the state at each sequence's own last valid step, so padding
    beyond ``lengths`` does not change the outputs. With ``bidirectional=True`` each layer
    also runs right-to-left over the valid steps (:class:`~flax.linen.Bidirectional`),
    outputs are concatenated ``[forward, backward]``, and the head reads the concatenation of
    the forward final state and the backward final state (the one after reading step 0).

    With ``readout="sequence"`` the head instead reads the whole output sequence of the last
    layer, flattened (``time * hidden`` features, ``2 * time * hidden`` when bidirectional;
    steps beyond ``lengths`` are zeroed): the MNIST-1D paper's GRU (Greydanus 2020) is
    ``RNNClassifier(10, cell="gru", hidden_size=6, bidirectional=True, readout="sequence")``
    (``jdl.nn.get_model("mnist1d_gru")``), 5,110 parameters on length-40 inputs (PyTorch's
    GRU has 5,134: it keeps a second bias per gate). This readout fixes the sequence length.

    Dropout (when ``dropout > 0`` and training) is applied to the output sequence of every
    layer but the last, and to the features entering the head.

    Parameter names: ``rnn_0``, ..., ``rnn_{L-1}``, each holding ``cell`` (unidirectional) or
    ``forward_rnn/cell`` and ``backward_rnn/cell`` (bidirectional), then ``head``. Inside a
    cell, Flax names the input kernels ``i`` (simple), ``ii/if/ig/io`` (lstm) or
    ``ir/iz/in`` (gru) and the recurrent ones ``h``, ``hi/hf/hg/ho``, ``hr/hz/hn``.

    Attributes:
      num_outputs: size of the output (number of logits or regression targets).
      cell: ``"simple"``, ``"lstm"`` or ``"gru"``.
      hidden_size: number of hidden units per layer and direction.
      num_layers: number of stacked RNN layers.
      bidirectional: also process each sequence backwards.
      dropout: dropout rate between layers and before the head, in ``[0, 1)``.
      readout: ``"last"`` (the final hidden state feeds the head) or ``"sequence"`` (the
        flattened output sequence of the last layer does).
      kernel_init: input-to-hidden kernel initialiser (name, stddev or callable).
      recurrent_init: hidden-to-hidden kernel initialiser; default orthogonal, as in Flax.
      bias_init: bias initialiser.
      output_activation: applied to the output (``None`` = identity, i.e. logits).
      dtype: computation dtype (also that of the hidden state); outputs have this dtype.
      param_dtype: dtype of the parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = RNNClassifier(num_outputs=10, cell="gru", hidden_size=8)
      >>> x = jnp.ones((3, 40))                       # (batch, time): one feature per step
      >>> variables = model.init(jax.random.key(0), x, train=False)
      >>> model.apply(variables, x, train=False, lengths=jnp.array([40, 20, 5])).shape
      (3, 10)
    """

    num_outputs: int
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    readout: str = "last"
    kernel_init: str | float | Callable[..., jax.Array] = "lecun"
    recurrent_init: str | float | Callable[..., jax.Array] = "orthogonal"
    bias_init: str | float | Callable[..., jax.Array] = "zeros"
    output_activation: str | Callable[[jax.Array], jax.Array] | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    #: Name of the output layer (what ``jdl.pretrained.replace_head`` swaps).
    head_name: ClassVar[str] = "head"

    def __post_init__(self) -> None:
        _cell_name(self.cell)
        for name in ("num_outputs", "hidden_size", "num_layers"):
            check_positive_int("RNNClassifier", name, getattr(self, name))
        check_rate("RNNClassifier dropout", self.dropout)
        if self.readout not in _READOUTS:
            raise ValueError(
                f"RNNClassifier readout must be one of {_READOUTS}, got {self.readout!r}"
            )
        get_activation(self.output_activation)
        for init in (self.kernel_init, self.recurrent_init, self.bias_init):
            get_initializer(init)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, lengths: jax.Array | None = None) -> jax.Array:
        """Classify a batch of sequences.

        Args:
          x: ``(batch, time, features)``, or ``(batch, time)`` for one feature per step.
          train: training mode (dropout active) or evaluation mode.
          lengths: optional int array ``(batch,)`` of valid lengths, each in ``[1, time]``;
            steps at and after ``lengths[b]`` are padding and are ignored.

        Returns:
          Outputs of shape ``(batch, num_outputs)``.

        Raises:
          ValueError: for a wrong input rank, no steps or no features, ``lengths`` of the
            wrong shape or (when known outside ``jit``) out of range, or (for an initialised
            model) a number of features per step other than the model's, or (with
            ``readout="sequence"``) a number of steps other than the model's.
        """
        x = jnp.asarray(x)
        input_shape = x.shape
        if x.ndim == 2:
            x = x[..., None]
        elif x.ndim != 3:
            raise rank_error("RNNClassifier", "(batch, time, features) or (batch, time)", x.shape)
        batch, time, features = x.shape
        if time == 0 or features == 0:
            raise ValueError(
                "RNNClassifier expects sequences of at least 1 step of at least 1 feature, shape "
                f"(batch, time, features) or (batch, time); got shape {tuple(input_shape)}"
            )
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch, time)
        cell_name = _cell_name(self.cell)
        direction = ("forward_rnn",) if self.bidirectional else ()
        check_param_dim(
            self,
            ("rnn_0", *direction, "cell", _INPUT_KERNEL[cell_name], "kernel"),
            0,
            features,
            lambda n: (
                f"RNNClassifier expects inputs with {n} features per step (shape (batch, time, "
                f"{n})), got shape {tuple(input_shape)}"
            ),
        )

        h = to_dtype(x, self.dtype)
        # The initial carry is zeros, as Flax's, in the dtype of the cells' outputs: a scan's
        # carry must keep one dtype (Flax's default float32 carry breaks SimpleCell in bf16).
        carry_dtype = self.dtype or jnp.result_type(h.dtype, self.param_dtype)
        final = None
        for layer in range(self.num_layers):
            if layer > 0 and uses_dropout(self.dropout):
                h = Dropout(self.dropout, deterministic=not train)(h)
            zeros = jnp.zeros((batch, self.hidden_size), carry_dtype)
            carry0 = (zeros, zeros) if cell_name == "lstm" else zeros  # an LSTM carries (c, h)
            if self.bidirectional:
                rnn = nn.Bidirectional(
                    nn.RNN(self._make_cell(), parent=None),
                    nn.RNN(self._make_cell(), parent=None),
                    name=f"rnn_{layer}",
                )
                (fwd, bwd), h = rnn(
                    h, initial_carry=(carry0, carry0), seq_lengths=lengths, return_carry=True
                )
                final = jnp.concatenate([self._hidden(fwd), self._hidden(bwd)], axis=-1)
            else:
                rnn = nn.RNN(self._make_cell(), name=f"rnn_{layer}")
                carry, h = rnn(h, initial_carry=carry0, seq_lengths=lengths, return_carry=True)
                final = self._hidden(carry)

        if self.readout == "sequence":
            if lengths is not None:
                valid = jnp.arange(time)[None, :] < lengths[:, None]
                h = jnp.where(valid[..., None], h, jnp.zeros((), h.dtype))
            final = flatten_examples(h)
            check_param_dim(
                self,
                (self.head_name, "kernel"),
                0,
                final.shape[-1],
                lambda n: (
                    f"RNNClassifier(readout='sequence') expects inputs of {n // h.shape[-1]} "
                    f"steps (its head reads time * hidden features), got shape "
                    f"{tuple(input_shape)}"
                ),
            )
        if uses_dropout(self.dropout):
            final = Dropout(self.dropout, deterministic=not train)(final)
        out = nn.Dense(
            self.num_outputs,
            kernel_init=get_initializer(self.kernel_init),
            bias_init=get_initializer(self.bias_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=self.head_name,
        )(final)
        return get_activation(self.output_activation)(out)

    def _make_cell(self) -> nn.RNNCellBase:
        """A fresh, unbound cell (adopted as ``cell`` by the ``nn.RNN`` that receives it)."""
        return RNN_CELLS[_cell_name(self.cell)](
            features=self.hidden_size,
            kernel_init=get_initializer(self.kernel_init),
            recurrent_kernel_init=get_initializer(self.recurrent_init),
            bias_init=get_initializer(self.bias_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            parent=None,
        )

    def _hidden(self, carry: Any) -> jax.Array:
        """The hidden state ``h`` of a carry (an LSTM's carry is ``(c, h)``)."""
        return carry[1] if _cell_name(self.cell) == "lstm" else carry

    @staticmethod
    def _check_lengths(lengths: Any, batch: int, time: int) -> jax.Array:
        lengths = jnp.asarray(lengths)
        if lengths.shape != (batch,):
            raise ValueError(
                f"RNNClassifier lengths must have shape (batch,) = ({batch},), got shape "
                f"{lengths.shape}"
            )
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(f"RNNClassifier lengths must be integers, got dtype {lengths.dtype}")
        if not isinstance(lengths, jax.core.Tracer):
            values = np.asarray(lengths)
            if values.min() < 1 or values.max() > time:
                raise ValueError(
                    f"RNNClassifier lengths must lie in [1, time] = [1, {time}], got values "
                    f"from {values.min()} to {values.max()}"
                )
        return lengths
