"""Loss functions and parameter penalties.

Every loss takes ``(predictions, targets)`` and returns a scalar: the mean over
examples, or over the examples where ``where`` is true (used to mask padded
evaluation batches so every real example counts exactly once). All functions are
pure and ``jax.jit``-able.

Classification losses take *logits* (unnormalised scores), never probabilities:
the log-sum-exp and softplus forms used here stay finite for any logit, where
``log(softmax(z))`` or ``log(sigmoid(z))`` computed naively overflow.

Example:
    >>> import jax.numpy as jnp
    >>> from jdl import losses
    >>> float(losses.mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
    2.0
    >>> losses.get("cross_entropy") is losses.cross_entropy
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jdl._core.checks import is_number
from jdl._core.reduce import check_same_shape, masked_mean, per_example_mean

Array = jax.Array
PyTree = Any

__all__ = [
    "mse",
    "mae",
    "binary_cross_entropy",
    "cross_entropy",
    "l1",
    "l2",
    "kernel_mask",
    "get",
    "LOSSES",
    "LOSS_ALIASES",
]


def mse(predictions: Array, targets: Array, *, where: Array | None = None) -> Array:
    """Mean squared error, ``mean((predictions - targets) ** 2)``.

    Args:
        predictions: model outputs, shape ``(batch, ...)``.
        targets: regression targets of the same shape (a ``(batch,)`` target against a
            ``(batch, 1)`` prediction is accepted).
        where: optional boolean mask of shape ``(batch,)``; masked-out examples are ignored.

    Returns:
        The scalar loss.

    Raises:
        ValueError: if the shapes of ``predictions`` and ``targets`` differ.
    """
    predictions, targets = check_same_shape("mse", predictions, targets)
    return masked_mean(per_example_mean(jnp.square(predictions - targets)), where)


def mae(predictions: Array, targets: Array, *, where: Array | None = None) -> Array:
    """Mean absolute error, ``mean(|predictions - targets|)``.

    Args:
        predictions: model outputs, shape ``(batch, ...)``.
        targets: regression targets of the same shape.
        where: optional boolean mask of shape ``(batch,)``.

    Returns:
        The scalar loss.

    Raises:
        ValueError: if the shapes of ``predictions`` and ``targets`` differ.
    """
    predictions, targets = check_same_shape("mae", predictions, targets)
    return masked_mean(per_example_mean(jnp.abs(predictions - targets)), where)


def binary_cross_entropy(logits: Array, labels: Array, *, where: Array | None = None) -> Array:
    """Binary cross-entropy from logits, numerically stable for any logit.

    Computes ``-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`` in the form
    ``max(z, 0) - z * y + log(1 + exp(-|z|))``, which never overflows.

    Args:
        logits: unnormalised scores, shape ``(batch,)`` or ``(batch, k)`` for ``k``
            independent binary outputs.
        labels: targets in ``[0, 1]`` (0/1 labels or soft targets), same shape as
            ``logits`` (a ``(batch,)`` label vector against ``(batch, 1)`` logits is accepted).
        where: optional boolean mask of shape ``(batch,)``.

    Returns:
        The scalar loss, averaged over examples (and over the ``k`` outputs).

    Raises:
        ValueError: if the shapes of ``logits`` and ``labels`` differ.
    """
    logits, labels = check_same_shape("binary_cross_entropy", logits, labels)
    labels = labels.astype(logits.dtype)
    per = jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return masked_mean(per_example_mean(per), where)


def _smoothing(label_smoothing: Any) -> bool:
    """Whether ``label_smoothing`` applies, after checking it is a number in ``[0, 1)``."""
    if is_number(label_smoothing):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
        return label_smoothing != 0
    if isinstance(label_smoothing, jax.Array):
        return True  # a traced value (swept by jdl.train.sweep) is applied unchecked
    raise TypeError(
        f"label_smoothing must be a number in [0, 1); got {type(label_smoothing).__name__}."
    )


def _index_cross_entropy(logits: Array, labels: Array, eps: Any, smooth: bool) -> Array:
    """Per-example cross-entropy against class indices, without building a one-hot.

    With ``s = logits - max(logits)`` and ``lse = log sum exp(s)``, the smoothed target
    ``t = (1 - eps) onehot(y) + eps / C`` sums to 1, so ``-sum_c t_c (s_c - lse)`` is
    ``lse - (1 - eps) s_y - eps mean(s)``: a gather of one logit per example and a mean.
    """
    num_classes = logits.shape[-1]
    shifted = logits - jnp.max(jax.lax.stop_gradient(logits), axis=-1, keepdims=True)
    lse = jnp.log(jnp.sum(jnp.exp(shifted), axis=-1))
    picked = jnp.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0]
    # take_along_axis would wrap a negative label round to another class: NaN instead,
    # as for a label past the last class.
    picked = jnp.where((labels >= 0) & (labels < num_classes), picked, jnp.nan)
    if not smooth:
        return lse - picked
    return lse - (1.0 - eps) * picked - eps * jnp.mean(shifted, axis=-1)


def cross_entropy(
    logits: Array,
    labels: Array,
    *,
    label_smoothing: float = 0.0,
    where: Array | None = None,
) -> Array:
    """Softmax cross-entropy from logits, for integer labels or one-hot / soft targets.

    Integer labels of shape ``(batch,)`` are compared with logits of shape
    ``(batch, classes)`` directly, as ``logsumexp(logits) - logits[label]``, without
    building a ``(batch, classes)`` one-hot; floating-point targets of the same shape as
    the logits are treated as probability vectors (one-hot or soft). Both forms give the
    same value and gradient.

    Args:
        logits: unnormalised class scores, shape ``(batch, classes)``.
        labels: integer class indices ``(batch,)`` or targets ``(batch, classes)``. An
            index outside ``[0, classes)`` gives a NaN loss for its example.
        label_smoothing: ``eps`` in ``[0, 1)``; the target becomes
            ``(1 - eps) * target + eps / classes``. A JAX array (e.g. a value traced by
            ``jdl.train.sweep(params={"label_smoothing": [...]})``) is applied unchecked.
        where: optional boolean mask of shape ``(batch,)``.

    Returns:
        The scalar loss.

    Raises:
        ValueError: on a shape mismatch or a ``label_smoothing`` outside ``[0, 1)``.
        TypeError: if ``label_smoothing`` is neither a number nor a JAX array.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 4)  # ln 4
        1.3863
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    smooth = _smoothing(label_smoothing)
    if logits.ndim < 2:
        raise ValueError(
            f"cross_entropy expects logits of shape (batch, classes); got shape {logits.shape}. "
            "For a single binary output use binary_cross_entropy."
        )
    if labels.shape == logits.shape[:-1] and jnp.issubdtype(labels.dtype, jnp.integer):
        per = _index_cross_entropy(logits, labels, label_smoothing, smooth)
        return masked_mean(per_example_mean(per), where)
    if not (labels.shape == logits.shape and jnp.issubdtype(labels.dtype, jnp.floating)):
        raise ValueError(
            "cross_entropy expects integer labels of shape "
            f"{logits.shape[:-1]} or float targets of shape {logits.shape}; got labels of "
            f"shape {labels.shape} and dtype {labels.dtype}."
        )
    targets = labels.astype(logits.dtype)
    if smooth:
        targets = (1.0 - label_smoothing) * targets + label_smoothing / logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    # A class scored more than the float range below the top one has log-probability -inf;
    # with target 0 it adds nothing (0 * -inf would be NaN).
    per = -jnp.sum(jnp.where(targets == 0, 0, targets * log_probs), axis=-1)
    return masked_mean(per_example_mean(per), where)


def kernel_mask(params: PyTree) -> PyTree:
    """A mask that selects weight matrices and convolution kernels only.

    Leaves with two or more dimensions (dense kernels, conv kernels, embeddings) map to
    ``True``; biases and BatchNorm scales/offsets (one-dimensional) map to ``False``.
    This is the usual choice for weight decay, and the default mask of :func:`l1` and
    :func:`l2`.

    Args:
        params: a parameter tree.

    Returns:
        A tree of booleans with the structure of ``params``.
    """
    return jax.tree_util.tree_map(lambda p: jnp.ndim(p) >= 2, params)


def _penalty(name: str, fn: Callable[[Array], Array], params: PyTree, mask: Any) -> Array:
    if mask is None:
        mask = kernel_mask(params)
    elif callable(mask):
        mask = mask(params)
    elif mask is True:
        mask = jax.tree_util.tree_map(lambda _: True, params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    try:
        mask_leaves = treedef.flatten_up_to(mask)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name}: the mask must have the same tree structure as params "
            f"({treedef}); got {jax.tree_util.tree_structure(mask)}."
        ) from err
    total = jnp.zeros((), jnp.float32)
    for leaf, keep in zip(leaves, mask_leaves, strict=True):
        if keep:
            total = total + jnp.sum(fn(jnp.asarray(leaf, jnp.float32)))
    return total


def l1(params: PyTree, *, mask: Any = None) -> Array:
    """L1 penalty ``sum |w|`` over the masked leaves of a parameter tree.

    Args:
        params: a parameter tree (e.g. ``variables["params"]``).
        mask: which leaves count. ``None`` (default) uses :func:`kernel_mask`, skipping
            biases and BatchNorm parameters; ``True`` counts every leaf; a tree of
            booleans with the structure of ``params``; or a function ``params -> mask``.

    Returns:
        A scalar (float32). Multiply by your coefficient and add it to the loss.

    Raises:
        ValueError: if the mask's structure does not match ``params``.
    """
    return _penalty("l1", jnp.abs, params, mask)


def l2(params: PyTree, *, mask: Any = None) -> Array:
    """L2 penalty ``sum w**2`` over the masked leaves of a parameter tree.

    No factor 1/2 is applied: ``coef * l2(params)`` adds ``2 * coef * w`` to each
    gradient, which equals optax's ``add_decayed_weights(2 * coef)``.

    Args:
        params: a parameter tree (e.g. ``variables["params"]``).
        mask: as for :func:`l1`; by default biases and BatchNorm parameters are skipped.

    Returns:
        A scalar (float32).

    Raises:
        ValueError: if the mask's structure does not match ``params``.
    """
    return _penalty("l2", jnp.square, params, mask)


LOSSES: dict[str, Callable[..., Array]] = {
    "mse": mse,
    "mae": mae,
    "binary_cross_entropy": binary_cross_entropy,
    "cross_entropy": cross_entropy,
}
"""The losses that can be named by string, e.g. ``fit(..., loss="cross_entropy")``."""

LOSS_ALIASES: dict[str, str] = {
    "ce": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
    "bce": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
}
"""Short and Keras-style names accepted for :data:`LOSSES` (``"ce"``, ``"bce"``, ...)."""


def get(loss: str | Callable[..., Array]) -> Callable[..., Array]:
    """Look up a loss by name, or return a callable unchanged.

    Args:
        loss: one of ``"mse"``, ``"mae"``, ``"binary_cross_entropy"``, ``"cross_entropy"``
            or an alias of :data:`LOSS_ALIASES` (``"ce"``, ``"bce"``, Keras' names), or a
            function ``(predictions, targets) -> scalar``.

    Returns:
        The loss function.

    Raises:
        ValueError: for an unknown name (the message lists the valid names).
        TypeError: for something that is neither a string nor callable.
    """
    if callable(loss):
        return loss
    if isinstance(loss, str):
        try:
            return LOSSES[LOSS_ALIASES.get(loss, loss)]
        except KeyError:
            aliases = ", ".join(f"{a!r} ({n})" for a, n in LOSS_ALIASES.items())
            raise ValueError(
                f"Unknown loss {loss!r}; expected one of {sorted(LOSSES)}, an alias "
                f"({aliases}) or a callable."
            ) from None
    raise TypeError(f"loss must be a name or a callable; got {type(loss).__name__}.")
