"""Activation functions by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

_Activation = Callable[[jax.Array], jax.Array]

__all__ = ["ACTIVATION_NAMES", "get_activation", "identity"]


def identity(x: jax.Array) -> jax.Array:
    """Return ``x`` unchanged (the "linear" activation).

    Args:
      x: any array.

    Returns:
      ``x`` itself.
    """
    return x


_ACTIVATIONS: dict[str, _Activation] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    # The exact erf form of Hendrycks & Gimpel (2016), as in PyTorch's default.
    "gelu": partial(jax.nn.gelu, approximate=False),
    # The tanh approximation (JAX's and Flax's default ``gelu``).
    "gelu_tanh": partial(jax.nn.gelu, approximate=True),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    # Negative slope 0.01, as in PyTorch and JAX.
    "leaky_relu": jax.nn.leaky_relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "identity": identity,
    "linear": identity,
    # Normalise over the last (feature) axis: for output layers read as probabilities.
    "softmax": partial(jax.nn.softmax, axis=-1),
    "log_softmax": partial(jax.nn.log_softmax, axis=-1),
}

#: Names accepted by :func:`get_activation`.
ACTIVATION_NAMES: tuple[str, ...] = tuple(_ACTIVATIONS)


def get_activation(activation: str | _Activation | None) -> _Activation:
    """Return the activation function named by ``activation``.

    Every named activation is element-wise except ``"softmax"`` and ``"log_softmax"``,
    which normalise over the last axis (the classes of an output layer). jdl's
    ``cross_entropy`` takes *logits*: train a classifier with ``output_activation=None``
    and apply ``jax.nn.softmax`` to read probabilities, or give the model
    ``output_activation="softmax"`` only where its outputs are used as probabilities.

    Args:
      activation: one of :data:`ACTIVATION_NAMES` (case-insensitive): ``"relu"``, ``"tanh"``,
        ``"sigmoid"``, ``"gelu"`` (exact erf form), ``"gelu_tanh"`` (tanh approximation),
        ``"elu"``, ``"selu"``, ``"leaky_relu"`` (slope 0.01), ``"silu"``/``"swish"``,
        ``"softplus"``, ``"identity"``/``"linear"``, ``"softmax"``, ``"log_softmax"``;
        ``None``, meaning identity; or any callable, returned unchanged.

    Returns:
      A function mapping an array to an array of the same shape.

    Raises:
      ValueError: for an unknown name; the message lists the valid names.
      TypeError: for anything that is neither a string, ``None`` nor a callable.

    Example:
      >>> import jax.numpy as jnp
      >>> get_activation("relu")(jnp.array([-1.0, 2.0]))
      Array([0., 2.], dtype=float32)
    """
    if activation is None:
        return identity
    if isinstance(activation, str):
        key = activation.strip().lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; valid names are "
                f"{', '.join(ACTIVATION_NAMES)}, or pass a callable"
            )
        return _ACTIVATIONS[key]
    if callable(activation):
        return activation
    raise TypeError(
        "activation must be a name, None or a callable, "
        f"got {type(activation).__name__} {activation!r}"
    )
