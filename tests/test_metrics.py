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


# -- precision / recall / F1 against scikit-learn ------------------------------------------
SCORES = ("precision", "recall", "f1")


def _sklearn(name, y_true, y_pred, **kw):
    import sklearn.metrics as skm

    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
    return fn(y_true, y_pred, zero_division=0, **kw)


@pytest.mark.parametrize("name", SCORES)
def test_binary_scores_match_sklearn_with_and_without_mask(name):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=64).astype(np.float32)
    labels = (rng.normal(size=64) + 0.5 * logits > 0).astype(np.float32)
    where = rng.random(64) < 0.7
    fn = metrics.get(name)
    pred = (logits > 0).astype(int)
    assert float(fn(logits, labels)) == pytest.approx(_sklearn(name, labels, pred), abs=1e-6)
    assert float(fn(logits[:, None], labels)) == pytest.approx(_sklearn(name, labels, pred))
    got = float(jax.jit(fn)(logits, labels, where=where))
    want = _sklearn(name, labels[where], pred[where])
    assert got == pytest.approx(want, abs=1e-6)
    assert got != pytest.approx(float(fn(logits, labels)), abs=1e-4)  # the mask matters
    # threshold moves the decision: logit > 1 is class 1
    got = float(fn(logits, labels, threshold=1.0))
    assert got == pytest.approx(_sklearn(name, labels, (logits > 1).astype(int)), abs=1e-6)


@pytest.mark.parametrize("name", SCORES)
@pytest.mark.parametrize("average", ["macro", "micro"])
def test_multiclass_scores_match_sklearn_with_and_without_mask(name, average):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=80)
    logits = rng.normal(size=(80, 5)).astype(np.float32)
    logits[np.arange(80), labels] += rng.random(80) * 2  # better than chance, not perfect
    where = rng.random(80) < 0.6
    pred = logits.argmax(-1)
    fn = metrics.get(name)
    got = float(fn(logits, labels, average=average))
    assert got == pytest.approx(_sklearn(name, labels, pred, average=average), abs=1e-6)
    one_hot = jax.nn.one_hot(labels, 5)
    assert float(fn(logits, one_hot, average=average)) == pytest.approx(got, abs=1e-6)
    got = float(jax.jit(lambda a, b, w: fn(a, b, average=average, where=w))(logits, labels, where))
    want = _sklearn(name, labels[where], pred[where], average=average)
    assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("name", SCORES)
def test_macro_average_skips_classes_absent_from_labels_and_predictions(name):
    # class 3 of 4 never occurs and is never predicted; class 2 is predicted but absent
    labels = np.array([0, 0, 1, 1, 1, 0])
    logits = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 1, 0]]
    pred = logits.argmax(-1)
    got = float(metrics.get(name)(logits, labels))
    assert got == pytest.approx(_sklearn(name, labels, pred, average="macro"), abs=1e-6)


def test_scores_defaults_errors_and_names():
    logits = jnp.array([2.0, -1.0, 0.5, -0.3])
    labels = jnp.array([1, 0, 0, 1])
    assert float(metrics.precision(logits, labels)) == pytest.approx(0.5)
    # a class never predicted: precision 0 (zero_division=0), not NaN
    assert float(metrics.precision(-jnp.ones(4), labels)) == 0.0
    assert float(metrics.f1(-jnp.ones(4), labels)) == 0.0
    with pytest.raises(ValueError, match="average must be one of"):
        metrics.f1(logits, labels, average="weighted")
    with pytest.raises(ValueError, match="average='binary' needs one output or two classes"):
        metrics.f1(LOGITS, LABELS, average="binary")
    with pytest.raises(ValueError, match="one entry per example"):
        metrics.recall(LOGITS, LABELS, where=jnp.ones(3, bool))
    # two-class logits with average="binary" score class 1, as a single output does
    two = jnp.stack([jnp.zeros(4), logits], axis=-1)
    assert float(metrics.f1(two, labels, average="binary")) == pytest.approx(
        float(metrics.f1(logits, labels))
    )
    for name in SCORES:
        assert metrics.get(name) is getattr(metrics, name)


@pytest.mark.parametrize("name", SCORES)
def test_labels_outside_the_classes_count_for_no_class(name):
    # A label of -1 or 5 (of 5 classes) is a miss for its prediction's class and adds to
    # no class's support: it must not wrap round to class 4 or 0.
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, size=40)
    labels[:3], labels[3:6] = -1, 5
    logits = rng.normal(size=(40, 5)).astype(np.float32)
    pred = logits.argmax(-1)
    for average in ("macro", "micro"):
        got = float(metrics.get(name)(logits, labels, average=average))
        want = _sklearn(name, labels, pred, average=average, labels=list(range(5)))
        if average == "macro":  # scikit-learn averages over every listed class
            present = [k for k in range(5) if (labels == k).any() or (pred == k).any()]
            want = np.mean([_sklearn(name, labels == k, pred == k) for k in present])
        assert got == pytest.approx(want, abs=1e-6)


def _eqns(jaxpr):
    """Every equation of a jaxpr, those of nested (jit) jaxprs too."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                yield from _eqns(inner)


def test_class_scores_build_no_one_hot():
    # a one-hot of 12 labels over 7 classes is an eq against an iota, shaped (12, 7)
    logits, labels = jnp.zeros((12, 7)), jnp.zeros((12,), jnp.int32)
    jaxpr = jax.make_jaxpr(lambda z, y: metrics.f1(z, y, average="macro"))(logits, labels)
    grid = [
        e.primitive.name
        for e in _eqns(jaxpr.jaxpr)
        if e.primitive.name in ("eq", "iota") and any(v.aval.shape == (12, 7) for v in e.outvars)
    ]
    assert grid == []
