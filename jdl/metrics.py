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

from jdl._core.reduce import check_same_shape, mask_weights, masked_mean, per_example_mean
from jdl.losses import mae, mse

Array = jax.Array

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "binary_accuracy",
    "mean_absolute_error",
    "root_mean_squared_error",
    "confusion_matrix",
    "precision",
    "recall",
    "f1",
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
    hit = jnp.any(top == labels[..., None], axis=-1).astype(jnp.float32)
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
        ``i`` predicted as ``j``. Labels outside ``[0, classes)`` have no row and are not
        counted (as masked-out examples are not).

    Raises:
        ValueError: if the labels (or the mask) do not fit the logits.
    """
    labels = _class_labels(logits, labels, "confusion_matrix")
    num_classes = logits.shape[-1]
    pred = jnp.argmax(logits, axis=-1)
    weight = mask_weights(where, labels.shape, jnp.int32)
    # A negative label would wrap round to another class's row; drop it instead.
    weight = jnp.where((labels >= 0) & (labels < num_classes), weight, 0)
    flat = labels * num_classes + pred
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[flat].add(weight)
    return counts.reshape(num_classes, num_classes)


AVERAGES = ("auto", "binary", "macro", "micro")
"""How :func:`precision`, :func:`recall` and :func:`f1` combine the classes."""


def _class_counts(
    logits: Array, labels: Array, where: Array | None, threshold: float, average: str, name: str
) -> tuple[Array, Array, Array, str]:
    """Per-class true positives, false positives and false negatives (masked), and the
    averaging resolved from ``"auto"``.

    A single output (``(batch,)`` or ``(batch, 1)``) is a binary problem, ``logit >
    threshold`` predicting class 1; wider outputs are classes (argmax), labels integer or
    one-hot. Both become two or more classes of counts, so every average reads the same.
    """
    if average not in AVERAGES:
        raise ValueError(f"{name}: average must be one of {list(AVERAGES)}; got {average!r}.")
    logits = jnp.asarray(logits)
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[-1] == 1):
        logits, labels = check_same_shape(name, logits, labels)
        pred = (logits.reshape(-1) > threshold).astype(jnp.int32)
        true = (labels.reshape(-1) > 0.5).astype(jnp.int32)
        num_classes, average = 2, "binary" if average == "auto" else average
    else:
        true = _class_labels(logits, labels, name)
        pred = jnp.argmax(logits, axis=-1)
        num_classes, average = logits.shape[-1], "macro" if average == "auto" else average
        if average == "binary" and num_classes != 2:
            raise ValueError(
                f"{name}: average='binary' needs one output or two classes; got "
                f"{num_classes} classes. Use average='macro' or 'micro'."
            )
    weight = mask_weights(where, true.shape, jnp.float32)
    # Counted by class index (no (batch, classes) one-hots); a label outside the classes
    # counts for no class, as a negative index would otherwise wrap round to one.
    true_weight = jnp.where((true >= 0) & (true < num_classes), weight, 0.0)
    zeros = jnp.zeros(num_classes, jnp.float32)
    tp = zeros.at[true].add(true_weight * (pred == true), mode="drop")
    predicted = zeros.at[pred].add(weight, mode="drop")
    actual = zeros.at[true].add(true_weight, mode="drop")
    return tp, predicted - tp, actual - tp, average


def _ratio(num: Array, den: Array) -> Array:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    return jnp.where(den > 0, num / jnp.maximum(den, 1e-30), 0.0)


def _averaged(
    score: Callable[[Array, Array, Array], Array], tp: Array, fp: Array, fn: Array, average: str
) -> Array:
    if average == "binary":
        return score(tp[1], fp[1], fn[1])
    if average == "micro":
        return score(jnp.sum(tp), jnp.sum(fp), jnp.sum(fn))
    # macro: the classes that occur among the (unmasked) labels or predictions, as
    # scikit-learn averages over unique_labels(y_true, y_pred).
    present = (tp + fp + fn) > 0
    per_class = jnp.where(present, score(tp, fp, fn), 0.0)
    return jnp.sum(per_class) / jnp.maximum(jnp.sum(present), 1)


def _precision(tp: Array, fp: Array, fn: Array) -> Array:
    return _ratio(tp, tp + fp)


def _recall(tp: Array, fp: Array, fn: Array) -> Array:
    return _ratio(tp, tp + fn)


def _f1(tp: Array, fp: Array, fn: Array) -> Array:
    return _ratio(2 * tp, 2 * tp + fp + fn)


_SCORE_DOC = """{what}

    Computed on the device from masked per-class counts, so it can be a metric of a jitted
    step. Matches ``sklearn.metrics.{name}_score`` with ``zero_division=0`` (a class never
    predicted has precision 0, one never present has recall 0).

    Args:
        logits: a single output ``(batch,)`` or ``(batch, 1)`` for a binary problem
            (``logit > threshold`` predicts class 1), or class scores ``(batch, classes)``
            (the argmax is the prediction).
        labels: 0/1 targets for a binary problem; integer labels ``(batch,)`` or one-hot
            targets ``(batch, classes)`` otherwise.
        average: ``"binary"`` (the score of class 1; the default for a single output),
            ``"macro"`` (the unweighted mean over the classes that occur among the labels
            or predictions, as scikit-learn does; the default for class scores) or
            ``"micro"`` (from counts pooled over the classes: equal to accuracy for
            single-label problems).
        threshold: the decision threshold on a binary logit (0 is probability 0.5).
        where: optional boolean mask ``(batch,)``; masked-out examples are ignored.

    Returns:
        A scalar in ``[0, 1]``.

    Raises:
        ValueError: for an unknown ``average``, ``"binary"`` with more than two classes,
            or labels (or a mask) that do not fit the logits.

    Note:
        {name_cap} is not a mean over examples. :func:`jdl.fit` and :func:`jdl.evaluate`
        average every metric over batches (weighted by their size), which for this one
        is close to, but not exactly, the number on the whole set; for the exact value
        evaluate in one batch (``eval_batch_size`` / ``batch_size`` at least the set's
        size) or compute it from the predictions.

    Example:
        >>> import jax.numpy as jnp
        >>> from jdl import metrics
        >>> logits = jnp.array([2.0, -1.0, 0.5, -0.3])       # predicts 1, 0, 1, 0
        >>> float(metrics.{name}(logits, jnp.array([1, 0, 0, 1])))
        {example}
    """


def precision(
    logits: Array,
    labels: Array,
    *,
    average: str = "auto",
    threshold: float = 0.0,
    where: Array | None = None,
) -> Array:
    tp, fp, fn, average = _class_counts(logits, labels, where, threshold, average, "precision")
    return _averaged(_precision, tp, fp, fn, average)


def recall(
    logits: Array,
    labels: Array,
    *,
    average: str = "auto",
    threshold: float = 0.0,
    where: Array | None = None,
) -> Array:
    tp, fp, fn, average = _class_counts(logits, labels, where, threshold, average, "recall")
    return _averaged(_recall, tp, fp, fn, average)


def f1(
    logits: Array,
    labels: Array,
    *,
    average: str = "auto",
    threshold: float = 0.0,
    where: Array | None = None,
) -> Array:
    tp, fp, fn, average = _class_counts(logits, labels, where, threshold, average, "f1")
    return _averaged(_f1, tp, fp, fn, average)


precision.__doc__ = _SCORE_DOC.format(
    what="Of the examples predicted positive (per class), the fraction that are.",
    name="precision",
    name_cap="Precision",
    example="0.5",
)
recall.__doc__ = _SCORE_DOC.format(
    what="Of the positive examples (per class), the fraction predicted positive.",
    name="recall",
    name_cap="Recall",
    example="0.5",
)
f1.__doc__ = _SCORE_DOC.format(
    what="The F1 score: the harmonic mean of precision and recall (per class).",
    name="f1",
    name_cap="F1",
    example="0.5",
)


METRICS: dict[str, Callable[..., Array]] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error,
    "rmse": root_mean_squared_error,
    "precision": precision,
    "recall": recall,
    "f1": f1,
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
