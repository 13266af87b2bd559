"""The reductions losses and metrics share: per-example means and masked batch means.

Every jdl loss and metric maps ``(predictions, targets)`` to one number per example and
averages those over the batch -- over the examples where ``where`` is true, so that padded
evaluation batches count every real example exactly once. :func:`flatten_examples` (one
row per example, an empty batch included) is also the models' flatten.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


def masked_mean(per_example: Array, where: Array | None) -> Array:
    """Mean of ``per_example`` (shape ``(batch,)``) over the entries where ``where`` is true.

    Raises:
      ValueError: if ``where`` does not have one entry per example.

    Example:
      >>> float(masked_mean(jnp.array([1.0, 2.0, 9.0]), jnp.array([True, True, False])))
      1.5
    """
    if where is None:
        return jnp.mean(per_example)
    weights = mask_weights(where, per_example.shape, per_example.dtype)
    return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1)


def mask_weights(where: Array | None, shape: tuple[int, ...], dtype: Any) -> Array:
    """A boolean mask ``where`` as 0/1 weights of ``dtype`` (all ones for ``None``).

    Raises:
      ValueError: if ``where`` does not have ``shape``, one entry per example.
    """
    if where is None:
        return jnp.ones(shape, dtype)
    where = jnp.asarray(where)
    if where.shape != shape:
        raise ValueError(
            f"`where` must have one entry per example, shape {shape}; got shape {where.shape}."
        )
    return where.astype(dtype)


def per_example_mean(x: Array) -> Array:
    """Mean over every axis but the first (the batch axis); scalars per example stay as is."""
    if x.ndim <= 1:
        return x
    return jnp.mean(flatten_examples(x), axis=1)


def flatten_examples(x: Array) -> Array:
    """``x`` of shape ``(batch, *dims)`` as ``(batch, prod(dims))``, an empty batch too.

    ``x.reshape(batch, -1)`` cannot tell the size of ``-1`` when ``batch`` is 0 (it raises
    ``ZeroDivisionError``); the product of the other axes can.

    Example:
      >>> flatten_examples(jnp.zeros((0, 2, 3))).shape
      (0, 6)
    """
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def check_same_shape(name: str, predictions: Array, targets: Array) -> tuple[Array, Array]:
    """``(predictions, targets)`` as arrays of one shape, or a ``ValueError`` naming ``name``.

    A regression head of width 1 against a flat target vector (or the reverse) is the one
    common, unambiguous mismatch: it is accepted (the flat one gets a trailing axis) instead
    of silently broadcasting to ``(batch, batch)``.

    Raises:
      ValueError: if the shapes differ in any other way.
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.shape != targets.shape:
        if predictions.shape == (*targets.shape, 1):
            targets = targets[..., None]
        elif targets.shape == (*predictions.shape, 1):
            predictions = predictions[..., None]
        else:
            raise ValueError(
                f"{name}: predictions and targets must have the same shape; got predictions "
                f"{predictions.shape} and targets {targets.shape}."
            )
    return predictions, targets
