"""Metrics computed on device.

Each metric takes ``(predictions, targets)`` (plus an optional ``where`` mask of
shape ``(batch,)`` for padded batches) and returns a scalar ``jax.Array``, so
metrics stay on the accelerator inside a jitted step and are fetched to the host
only when they are logged.

Example:
    >>> import jax.numpy as jnp
    >>> from jdl import metrics
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    >>> float(metrics.accuracy(logits, jnp.array([0, 1, 1])))
    0.6666666865348816
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jdl._core.reduce import check_same_shape, masked_mean, per_example_mean
from jdl.losses import mae, mse

Array = jax.Array

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "binary_accuracy",
    "mean_absolute_error",
    "root_mean_squared_error",
    "confusion_matrix",
    "get",
    "METRICS",
]


def _class_labels(logits: Array, labels: Array, name: str) -> Array:
    """Integer class labels from integer labels or one-hot/soft targets."""
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 2:
        raise ValueError(
            f"{name} expects logits of shape (batch, classes); got shape {logits.shape}. "
            "For a single binary output use binary_accuracy."
        )
    if labels.shape == logits.shape:
        return jnp.argmax(labels, axis=-1)
    if labels.shape == logits.shape[:-1]:
        return labels.astype(jnp.int32)
    raise ValueError(
        f"{name} expects labels of shape {logits.shape[:-1]} (class indices) or "
        f"{logits.shape} (one-hot); got shape {labels.shape}."
    )


def accuracy(logits: Array, labels: Array, *, where: Array | None = None) -> Array:
    """Fraction of examples whose highest-scoring class is the label.

    Args:
        logits: class scores (logits or probabilities), shape ``(batch, classes)``.
        labels: integer labels ``(batch,)`` or one-hot targets ``(batch, classes)``.
        where: optional boolean mask ``(batch,)``; masked-out examples are ignored.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: if the label shape fits neither form.
    """
    labels = _class_labels(logits, labels, "accuracy")
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return masked_mean(correct, where)


def top_k_accuracy(
    logits: Array, labels: Array, *, k: int = 5, where: Array | None = None
) -> Array:
    """Fraction of examples whose label is among the ``k`` highest-scoring classes.

    Args:
        logits: class scores, shape ``(batch, classes)``.
        labels: integer labels ``(batch,)`` or one-hot targets.
        k: how many top classes count as a hit (``1 <= k <= classes``).
        where: optional boolean mask ``(batch,)``.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: if ``k`` is out of range or the label shape is wrong.
    """
    labels = _class_labels(logits, labels, "top_k_accuracy")
    num_classes = logits.shape[-1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be between 1 and the number of classes {num_classes}; got {k}.")
    _, top = jax.lax.top_k(logits, k)
    hit = jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)
    return masked_mean(hit, where)


def binary_accuracy(
    logits: Array, labels: Array, *, threshold: float = 0.0, where: Array | None = None
) -> Array:
    """Accuracy of binary predictions made from logits (``logit > threshold`` means class 1).

    Args:
        logits: shape ``(batch,)`` or ``(batch, k)`` for ``k`` independent binary outputs.
        labels: 0/1 labels of the same shape (``(batch,)`` against ``(batch, 1)`` is accepted).
        threshold: decision threshold on the logit (0 is probability 0.5).
        where: optional boolean mask ``(batch,)``.

    Returns:
        A scalar in ``[0, 1]``.
    """
    logits, labels = check_same_shape("binary_accuracy", logits, labels)
    correct = ((logits > threshold) == (labels > 0.5)).astype(jnp.float32)
    return masked_mean(per_example_mean(correct), where)


def mean_absolute_error(predictions: Array, targets: Array, *, where: Array | None = None) -> Array:
    """Mean absolute error (the same number as :func:`jdl.losses.mae`), as a metric."""
    return mae(predictions, targets, where=where)


def root_mean_squared_error(
    predictions: Array, targets: Array, *, where: Array | None = None
) -> Array:
    """Root mean squared error, ``sqrt(mse)``, in the units of the targets."""
    return jnp.sqrt(mse(predictions, targets, where=where))


def confusion_matrix(logits: Array, labels: Array, *, where: Array | None = None) -> Array:
    """Counts of (true class, predicted class) pairs.

    Args:
        logits: class scores, shape ``(batch, classes)``.
        labels: integer labels ``(batch,)`` or one-hot targets.
        where: optional boolean mask ``(batch,)``.

    Returns:
        An int32 array ``(classes, classes)``; entry ``[i, j]`` counts examples of class
        ``i`` predicted as ``j``.
    """
    labels = _class_labels(logits, labels, "confusion_matrix")
    num_classes = logits.shape[-1]
    pred = jnp.argmax(logits, axis=-1)
    weight = jnp.ones_like(labels) if where is None else jnp.asarray(where).astype(jnp.int32)
    flat = labels * num_classes + pred
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[flat].add(weight)
    return counts.reshape(num_classes, num_classes)


METRICS: dict[str, Callable[..., Array]] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error,
    "rmse": root_mean_squared_error,
}
"""The scalar metrics that can be named by string."""


def get(metric: str | Callable[..., Array]) -> Callable[..., Array]:
    """Look up a metric by name, or return a callable unchanged.

    Raises:
        ValueError: for an unknown name (the message lists the valid names).
    """
    if callable(metric):
        return metric
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(
            f"Unknown metric {metric!r}; expected one of {sorted(METRICS)} or a callable."
        ) from None
