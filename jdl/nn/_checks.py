"""Private helpers shared by the models: argument normalisation and input validation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl._core.checks import is_int


def check_positive_int(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is an int >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{owner} {name} must be a positive int, got {value!r}")


def check_positive_ints(owner: str, name: str, values: Sequence[Any]) -> None:
    """Raise a ValueError unless every entry of ``values`` is an int >= 1."""
    for i, value in enumerate(values):
        if not is_int(value) or value < 1:
            raise ValueError(f"{owner} {name} must be positive ints, got {name}[{i}] = {value!r}")


def rank_error(model: str, expected: str, shape: tuple[int, ...]) -> ValueError:
    """A ValueError saying which input shapes ``model`` accepts and which one it got."""
    return ValueError(f"{model} expects inputs of shape {expected}, got shape {tuple(shape)}")


def existing_param_shape(module: nn.Module, path: Sequence[str]) -> tuple[int, ...] | None:
    """Shape of the parameter at ``path`` (relative to ``module``) if it already exists.

    Returns ``None`` while the model is being initialised or when the parameter is absent, so
    callers only validate inputs against parameters that were created earlier.
    """
    if module.is_initializing():
        return None
    node: Any = module.variables.get("params")
    for part in path:
        if node is None or not hasattr(node, "get"):
            return None
        node = node.get(part)
    shape = getattr(node, "shape", None)
    return None if shape is None else tuple(shape)


def check_param_dim(
    module: nn.Module,
    path: Sequence[str],
    axis: int,
    found: int,
    message: Callable[[int], str],
) -> None:
    """Raise ``ValueError(message(expected))`` if the existing parameter's ``axis`` != ``found``."""
    shape = existing_param_shape(module, path)
    if shape is not None and shape[axis] != found:
        raise ValueError(message(shape[axis]))


def check_rate(name: str, rate: float) -> None:
    """Check that a dropout rate lies in [0, 1) (a JAX array -- a rate traced by
    ``jdl.train.sweep`` -- is accepted unchecked)."""
    if isinstance(rate, jax.Array):
        return
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be a dropout rate in [0, 1), got {rate!r}")


def per_layer(name: str, value: Any, num_layers: int, is_scalar: Callable[[Any], bool]) -> list:
    """Expand a scalar setting to ``num_layers`` copies, or check a per-layer sequence's length."""
    if is_scalar(value):
        return [value] * num_layers
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        if len(values) != num_layers:
            raise ValueError(
                f"{name} must be a single value or one value per conv layer ({num_layers}), "
                f"got {len(values)} values: {value!r}"
            )
        return values
    raise TypeError(f"{name}: expected a single value or a sequence of values, got {value!r}")


def to_dtype(x: jnp.ndarray, dtype: Any) -> jnp.ndarray:
    """Cast inputs to the computation dtype; with ``dtype=None`` only integers become float32."""
    if dtype is not None:
        return x.astype(dtype)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)
