"""The models of ``python -m jdl train --model``: names and builders.

The builders import :mod:`jdl` when called, so the names are known (for the parser and
``--help``) without importing JAX or Flax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Builder = Callable[[tuple[int, ...], int], Any]


def _mnist1d_cnn(x_shape: tuple[int, ...], n: int) -> Any:
    import jdl

    if len(x_shape) == 1 or (len(x_shape) == 2 and x_shape[-1] <= 4):
        return jdl.nn.get_model("mnist1d_cnn", num_outputs=n)
    return jdl.nn.CNN(
        features=(32, 64), kernel_size=3, pool="max", dense=(128,), ndim=2, num_outputs=n
    )


def _recurrent(cell: str) -> Builder:
    def build(x_shape: tuple[int, ...], n: int) -> Any:
        import jdl

        if len(x_shape) not in (1, 2):
            raise ValueError(
                f"Model '{cell}' reads sequences: inputs of shape (time,) or (time, features) "
                f"per example; this dataset's inputs have shape {tuple(x_shape)}."
            )
        return jdl.nn.get_model("mnist1d_gru", num_outputs=n, cell=cell)

    return build


def _registered(name: str) -> Builder:
    def build(x_shape: tuple[int, ...], n: int) -> Any:
        import jdl

        return jdl.nn.get_model(name, num_outputs=n)

    return build


MODELS: dict[str, Builder] = {
    "logistic": _registered("mnist1d_logistic"),
    "mlp": _registered("mnist1d_mlp"),
    "cnn": _mnist1d_cnn,
    "gru": _recurrent("gru"),
    "lstm": _recurrent("lstm"),
    "rnn": _recurrent("simple"),
}
"""Model names of ``python -m jdl train --model`` -> builder ``(x_shape, num_outputs)``.

The MNIST-1D paper's models, from :func:`jdl.nn.get_model`: ``logistic``
(``"mnist1d_logistic"``, one linear layer); ``mlp`` (``"mnist1d_mlp"``, two ReLU layers of
100 units); ``cnn``: ``"mnist1d_cnn"`` (the 1-D CNN) for sequences, a small 2-D CNN (32 and
64 channels, max pooling, a 128-unit dense layer) for images; ``gru`` / ``lstm`` / ``rnn``:
``"mnist1d_gru"`` with that cell (bidirectional, 6 units per direction, head on every
step)."""


def build_model(name: str, x_shape: Sequence[int], num_outputs: int) -> Any:
    """The model ``name`` of :data:`MODELS` for inputs of shape ``x_shape`` (one example).

    Args:
        name: a key of :data:`MODELS`.
        x_shape: the shape of one example's input.
        num_outputs: the number of classes, or of regression targets.

    Returns:
        The ``flax.linen`` module.

    Raises:
        ValueError: for an unknown name, or a model that cannot read such inputs.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(MODELS)}.")
    return MODELS[name](tuple(x_shape), num_outputs)
