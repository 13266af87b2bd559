"""Properties of jdl.metrics over random batches: ranges, batch-order invariance, NumPy and
scikit-learn references, and masked examples ignored."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jdl import metrics

from ._strategies import BATCHES, classification, floats, jitted, masks, permutations

CLASS_METRICS = ["accuracy", "top_k_accuracy", "precision", "recall", "f1"]
# The metrics jitted: one compilation per shape (the checks run while tracing).
accuracy = jitted(metrics.accuracy)
top_k_accuracy = jitted(metrics.top_k_accuracy)
binary_accuracy = jitted(metrics.binary_accuracy)
confusion_matrix = jitted(metrics.confusion_matrix)
mean_absolute_error = jitted(metrics.mean_absolute_error)
root_mean_squared_error = jitted(metrics.root_mean_squared_error)


def _metric(name: str):
    """The metric ``name``, jitted; top-k with ``k=2``, which every drawn number of classes
    has."""
    fn = jitted(metrics.METRICS[name])
    return functools.partial(fn, k=2) if name == "top_k_accuracy" else fn


def _close(got, want, *, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


@given(classification(ties=True), st.data())
def test_accuracy_is_the_numpy_fraction_in_zero_one_for_labels_and_one_hot(case, data):
    logits, labels = case
    want = np.mean(np.argmax(logits, axis=-1) == labels)  # ties: the first top class
    got = accuracy(logits, labels)
    assert 0.0 <= float(got) <= 1.0
    _close(got, want)
    _close(accuracy(logits, np.eye(logits.shape[1], dtype=np.float32)[labels]), want)


@given(st.sampled_from(CLASS_METRICS), classification(ties=True), permutations(8))
def test_class_metrics_lie_in_zero_one_and_ignore_the_order_of_the_batch(name, case, perm):
    logits, labels = case
    perm = perm[perm < len(labels)]
    fn = _metric(name)
    got = float(fn(logits, labels))
    assert 0.0 <= got <= 1.0
    _close(fn(logits[perm], labels[perm]), got)


@given(st.sampled_from(CLASS_METRICS + ["binary_accuracy"]), classification(ties=True), st.data())
def test_masked_out_examples_are_ignored(name, case, data):
    logits, labels = case
    if name == "binary_accuracy":
        logits, labels = logits[:, 0], labels % 2
    where = data.draw(masks(len(labels)))
    fn = _metric(name)
    got = fn(logits, labels, where=where)
    if where.any():
        _close(got, float(fn(logits[where], labels[where])))
    else:
        assert float(got) == 0.0
    # Whatever the masked-out examples hold, the value stays.
    scrambled = np.where(where[:, None] if logits.ndim == 2 else where, logits, -logits)
    _close(fn(scrambled, labels, where=where), float(got))


@given(classification(ties=True), st.data())
def test_top_k_accuracy_grows_with_k_from_accuracy_to_one(case, data):
    logits, labels = case
    classes = logits.shape[1]
    # Without ties the top-k classes are unambiguous.
    logits = logits + np.arange(classes, dtype=np.float32)[::-1] * 1e-3
    rank = (logits > logits[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    k = data.draw(st.integers(1, classes))
    values = [float(top_k_accuracy(logits, labels, k=j)) for j in sorted({1, k, classes})]
    _close(values[0], float(accuracy(logits, labels)))
    assert values == sorted(values) and values[-1] == 1.0
    _close(top_k_accuracy(logits, labels, k=k), np.mean(rank < k))
    # Logits with more leading axes, (batch, time, classes), are scored per position.
    _close(top_k_accuracy(logits[None], labels[None], k=k), np.mean(rank < k))
    for bad in (0, classes + 1):
        with pytest.raises(ValueError, match="k must be between 1 and the number of classes"):
            top_k_accuracy(logits, labels, k=bad)


@given(st.sampled_from(BATCHES), st.data())
def test_binary_accuracy_thresholds_the_logit(batch, data):
    width = data.draw(st.sampled_from([None, 1, 3]))
    shape = (batch,) if width is None else (batch, width)
    logits = data.draw(floats(shape, bound=5.0))
    labels = data.draw(hnp.arrays(np.int32, shape, elements=st.integers(0, 1)))
    threshold = data.draw(st.floats(-3, 3))
    got = binary_accuracy(logits, labels, threshold=threshold)
    _close(got, np.mean((logits > np.float32(threshold)) == (labels == 1)))


@given(classification(ties=True), st.data())
def test_confusion_matrix_counts_every_kept_example_once(case, data):
    logits, labels = case
    where = data.draw(masks(len(labels)))
    classes = logits.shape[1]
    want = np.zeros((classes, classes), np.int64)
    np.add.at(want, (labels[where], np.argmax(logits, axis=-1)[where]), 1)
    got = np.asarray(confusion_matrix(logits, labels, where=where))
    np.testing.assert_array_equal(got, want)
    full = np.asarray(confusion_matrix(logits, labels))
    assert full.sum() == len(labels)
    _close(np.trace(full) / len(labels), float(accuracy(logits, labels)))


@given(classification(ties=True), st.integers(0, 2))
def test_a_where_of_the_wrong_shape_is_a_value_error(case, extra):
    logits, labels = case
    wrong = np.ones((len(labels) + extra + 1,) if extra < 2 else (len(labels), 1), bool)
    for name in CLASS_METRICS + ["binary_accuracy"]:
        y = labels % 2 if name == "binary_accuracy" else labels
        z = logits[:, 0] if name == "binary_accuracy" else logits
        with pytest.raises(ValueError, match="`where` must have one entry per example"):
            _metric(name)(z, y, where=wrong)
    with pytest.raises(ValueError, match="`where` must have one entry per example"):
        confusion_matrix(logits, labels, where=wrong)


@given(classification(ties=True), st.data())
def test_confusion_matrix_leaves_out_labels_outside_the_classes(case, data):
    logits, labels = case
    classes = logits.shape[1]
    bad = data.draw(masks(len(labels)))
    labels = np.where(bad, data.draw(st.sampled_from([-1, -classes, classes, classes + 2])), labels)
    got = np.asarray(confusion_matrix(logits, labels))
    assert got.sum() == np.sum(~bad)
    want = np.zeros((classes, classes), np.int64)
    np.add.at(want, (labels[~bad], np.argmax(logits, axis=-1)[~bad]), 1)
    np.testing.assert_array_equal(got, want)


@given(
    st.sampled_from(["precision", "recall", "f1"]),
    st.sampled_from(["macro", "micro"]),
    classification(ties=True),
)
def test_precision_recall_f1_match_scikit_learn(name, average, case):
    import sklearn.metrics

    logits, labels = case
    pred = np.argmax(logits, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(sklearn.metrics, f"{name}_score")(
            labels, pred, average=average, zero_division=0
        )
    _close(_metric(name)(logits, labels, average=average), want)
    if average == "micro":
        _close(_metric(name)(logits, labels, average="micro"), np.mean(pred == labels))


@given(st.sampled_from(["precision", "recall", "f1"]), st.sampled_from(BATCHES), st.data())
def test_binary_precision_recall_f1_match_scikit_learn(name, batch, data):
    import sklearn.metrics

    logits = data.draw(floats((batch,), bound=5.0))
    labels = data.draw(hnp.arrays(np.int32, (batch,), elements=st.integers(0, 1)))
    want = getattr(sklearn.metrics, f"{name}_score")(
        labels, (logits > 0).astype(int), average="binary", zero_division=0
    )
    _close(_metric(name)(logits, labels), want)
    _close(_metric(name)(logits[:, None], labels), want)


@given(st.sampled_from(BATCHES), st.data())
def test_regression_metrics_are_the_numpy_errors(batch, data):
    p = data.draw(floats((batch, 2), bound=100.0))
    t = data.draw(floats((batch, 2), bound=100.0))
    d = p.astype(np.float64) - t
    _close(mean_absolute_error(p, t), np.mean(np.abs(d)), rtol=1e-4, atol=1e-4)
    _close(root_mean_squared_error(p, t), np.sqrt(np.mean(d**2)), rtol=1e-4, atol=1e-4)


@given(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3), st.data())
def test_class_metrics_reject_labels_that_fit_neither_form(logit_shape, data):
    label_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    if len(logit_shape) >= 2 and label_shape in (logit_shape, logit_shape[:-1]):
        return
    for name in ["accuracy", "top_k_accuracy"]:
        with pytest.raises(ValueError, match=name) as err:
            metrics.METRICS[name](np.zeros(logit_shape, np.float32), np.zeros(label_shape, int))
        assert str(logit_shape) in str(err.value)


@given(st.text(max_size=12))
def test_get_resolves_every_name_and_rejects_the_rest(name):
    if name in metrics.METRICS:
        assert metrics.get(name) is metrics.METRICS[name]
    else:
        with pytest.raises(ValueError, match="Unknown metric"):
            metrics.get(name)
