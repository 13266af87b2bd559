"""Metrics against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import metrics

LOGITS = jnp.array([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0], [3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
LABELS = jnp.array([0, 1, 2, 1])  # predictions: 0, 2, 0, 1 -> 2 of 4 right


def test_accuracy_integer_and_one_hot():
    assert float(metrics.accuracy(LOGITS, LABELS)) == pytest.approx(0.5)
    assert float(metrics.accuracy(LOGITS, jax.nn.one_hot(LABELS, 3))) == pytest.approx(0.5)
    assert float(jax.jit(metrics.accuracy)(LOGITS, LABELS)) == pytest.approx(0.5)


def test_accuracy_with_mask_counts_only_real_examples():
    where = jnp.array([True, True, False, True])
    assert float(metrics.accuracy(LOGITS, LABELS, where=where)) == pytest.approx(2 / 3)


def test_top_k_accuracy():
    # second-best classes: ex0 -> 2, ex1 -> 1 (hit), ex2 -> 2 (hit), ex3 -> 2
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, k=2)) == pytest.approx(1.0)
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, k=1)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="between 1 and"):
        metrics.top_k_accuracy(LOGITS, LABELS, k=4)


def test_binary_accuracy():
    logits = jnp.array([[0.3], [-2.0], [1.0], [-0.1]])
    labels = jnp.array([1.0, 0.0, 0.0, 1.0])
    assert float(metrics.binary_accuracy(logits, labels)) == pytest.approx(0.5)


def test_regression_metrics():
    pred = jnp.array([1.0, 2.0, 3.0])
    target = jnp.array([1.0, 4.0, 0.0])
    assert float(metrics.mean_absolute_error(pred, target)) == pytest.approx(5 / 3)
    assert float(metrics.root_mean_squared_error(pred, target)) == pytest.approx(np.sqrt(13 / 3))


def test_confusion_matrix():
    cm = metrics.confusion_matrix(LOGITS, LABELS)
    expected = np.zeros((3, 3), int)
    for t, p in [(0, 0), (1, 2), (2, 0), (1, 1)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(cm, expected)
    cm = metrics.confusion_matrix(LOGITS, LABELS, where=jnp.array([1, 1, 0, 1], bool))
    assert int(cm.sum()) == 3


def test_bad_label_shape_and_unknown_name():
    with pytest.raises(ValueError, match=r"\(4,\).*got shape \(3,\)"):
        metrics.accuracy(LOGITS, LABELS[:3])
    with pytest.raises(ValueError, match="accuracy"):
        metrics.get("acc")
    assert metrics.get("accuracy") is metrics.accuracy
