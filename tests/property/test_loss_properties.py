"""Properties of jdl.losses over random shapes and values: finite, invariant, reference-equal,
masked as documented, and every bad shape or argument met by jdl's own error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jdl import losses

from ._strategies import (
    BATCHES,
    CLASSES,
    WIDTHS,
    classification,
    floats,
    jitted,
    masks,
    permutations,
)

F32_MAX = float(np.finfo(np.float32).max)
#: The losses jitted: one compilation per shape, and a check that fails fails while tracing
#: (before anything is compiled), as it does eagerly.
LOSSES = {name: jitted(fn) for name, fn in losses.LOSSES.items()}
cross_entropy = LOSSES["cross_entropy"]


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _close(got, want, *, rtol=1e-4, atol=1e-4):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


@st.composite
def loss_inputs(draw, *, bound: float = 1e3):
    """``(name, predictions, targets)`` valid for the loss ``name``, of random shapes."""
    name = draw(st.sampled_from(sorted(losses.LOSSES)))
    batch = draw(st.sampled_from(BATCHES))
    if name == "cross_entropy":
        logits, labels = draw(classification(bound=bound))
        if draw(st.booleans()):  # soft targets: probability vectors
            raw = draw(floats(logits.shape, bound=10.0))
            labels = np.exp(_np_log_softmax(raw)).astype(np.float32)
        return name, logits, labels
    shape = draw(st.sampled_from([(batch,), (batch, draw(st.sampled_from(WIDTHS)))]))
    predictions = draw(floats(shape, bound=bound))
    if name == "binary_cross_entropy":
        targets = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    else:
        targets = draw(floats(shape, bound=bound))
    return name, predictions, targets


# -- finite, non-negative, reference values ---------------------------------------------


@given(loss_inputs(bound=F32_MAX / 4))
def test_every_loss_is_a_finite_non_negative_scalar_for_finite_inputs(case):
    name, predictions, targets = case
    if name in ("mse", "mae"):  # (p - t)^2 of values near the float32 limit overflows
        predictions, targets = predictions / 1e20, targets / 1e20
    value = LOSSES[name](predictions, targets)
    assert value.shape == ()
    assert np.isfinite(value), (name, predictions, targets, value)
    assert value >= 0


@given(classification(bound=F32_MAX))
def test_cross_entropy_is_finite_when_the_label_scores_highest_however_large_the_logits(case):
    # The loss is then at most log(classes); classes with -inf log-probabilities (logits
    # further than the float32 range below the top one) have target 0 and add nothing.
    logits, labels = case
    logits[np.arange(len(labels)), labels] = F32_MAX
    for fn in (losses.cross_entropy, cross_entropy):  # eager and jitted (XLA simplifies)
        value = float(fn(logits, labels))
        assert 0.0 <= value <= np.log(logits.shape[1]) + 1e-6, (logits, labels, value)


@given(loss_inputs(), permutations(8))
def test_every_loss_is_invariant_to_the_order_of_the_batch(case, perm):
    name, predictions, targets = case
    perm = perm[perm < len(predictions)]
    fn = LOSSES[name]
    _close(fn(predictions[perm], targets[perm]), float(fn(predictions, targets)), rtol=1e-5)


@given(loss_inputs(), st.data())
def test_where_averages_over_exactly_the_selected_examples(case, data):
    name, predictions, targets = case
    where = data.draw(masks(len(predictions)))
    fn = LOSSES[name]
    got = fn(predictions, targets, where=where)
    if where.any():
        _close(got, float(fn(predictions[where], targets[where])), rtol=1e-5)
    else:
        assert float(got) == 0.0


@given(st.sampled_from(sorted(losses.LOSSES)), st.sampled_from(WIDTHS))
def test_an_empty_batch_under_an_empty_mask_is_a_zero_loss(name, width):
    # A padded evaluation batch can hold no real example; its loss is then 0, not an error.
    if name == "cross_entropy":
        args = np.zeros((0, width + 1), np.float32), np.zeros((0,), np.int32)
    else:
        args = np.zeros((0, width), np.float32), np.zeros((0, width), np.float32)
    assert float(LOSSES[name](*args, where=np.zeros((0,), bool))) == 0.0


@given(loss_inputs(), st.integers(0, 3))
def test_a_where_of_the_wrong_shape_is_a_value_error(case, extra):
    name, predictions, targets = case
    wrong = np.ones((len(predictions) + extra + 1,) if extra < 3 else (len(predictions), 1), bool)
    with pytest.raises(ValueError, match="`where` must have one entry per example"):
        LOSSES[name](predictions, targets, where=wrong)


@given(st.data())
def test_mse_and_mae_equal_the_numpy_means_and_vanish_only_for_equal_arrays(data):
    batch = data.draw(st.sampled_from(BATCHES))
    shape = data.draw(st.sampled_from([(batch,), (batch, 3)]))
    grid = st.integers(-8000, 8000).map(lambda i: i / 8)  # exact in float32: no underflow
    p = data.draw(hnp.arrays(np.float32, shape, elements=grid))
    t = data.draw(hnp.arrays(np.float32, shape, elements=grid))
    d = p.astype(np.float64) - t
    _close(LOSSES["mse"](p, t), np.mean(d**2), rtol=1e-5)
    _close(LOSSES["mae"](p, t), np.mean(np.abs(d)), rtol=1e-5)
    assert float(LOSSES["mse"](p, p)) == 0.0 == float(LOSSES["mae"](p, p))
    assert (float(LOSSES["mse"](p, t)) > 0) == bool((p != t).any())
    assert float(LOSSES["mse"](p, t)) == float(LOSSES["mse"](t, p))


@given(st.sampled_from(["mse", "mae", "binary_cross_entropy"]), st.data())
def test_a_flat_target_against_a_width_one_head_is_the_same_loss(name, data):
    batch = data.draw(st.sampled_from(BATCHES))
    p = data.draw(floats((batch, 1), bound=30.0))
    t = data.draw(hnp.arrays(np.float32, (batch,), elements=st.floats(0, 1, width=32)))
    fn = LOSSES[name]
    want = float(fn(p, t[:, None]))
    _close(fn(p, t), want, rtol=1e-6)
    _close(fn(p[:, 0], t[:, None]), want, rtol=1e-6)


@given(classification(bound=30.0), st.data())
def test_cross_entropy_is_the_mean_negative_log_softmax_and_shift_invariant(case, data):
    logits, labels = case
    log_p = _np_log_softmax(logits)
    want = -np.mean(log_p[np.arange(len(labels)), labels])
    _close(cross_entropy(logits, labels), want)
    one_hot = np.eye(logits.shape[1], dtype=np.float32)[labels]
    _close(cross_entropy(logits, one_hot), want)
    shift = data.draw(floats((len(logits), 1), bound=100.0))
    _close(cross_entropy(logits + shift, labels), want, atol=1e-3)


@given(classification(bound=30.0), st.floats(0.0, 1.0, exclude_max=True))
def test_label_smoothing_mixes_in_the_uniform_target(case, eps):
    logits, labels = case
    log_p = _np_log_softmax(logits)
    hard = -np.mean(log_p[np.arange(len(labels)), labels])
    uniform = -np.mean(log_p.mean(axis=-1))
    got = cross_entropy(logits, labels, label_smoothing=eps)
    _close(got, (1 - eps) * hard + eps * uniform)
    assert np.isfinite(got)


@given(
    classification(),
    st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(1.0), st.just(float("nan"))),
)
def test_label_smoothing_outside_zero_one_is_a_value_error(case, eps):
    logits, labels = case
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        losses.cross_entropy(logits, labels, label_smoothing=eps)


@given(st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.lists(st.floats(0, 0.5))))
def test_label_smoothing_that_is_no_number_is_a_type_error(eps):
    with pytest.raises(TypeError, match="label_smoothing must be a number"):
        losses.cross_entropy(
            np.zeros((2, 3), np.float32), np.zeros(2, np.int32), label_smoothing=eps
        )


@given(classification(bound=30.0), st.data())
def test_binary_cross_entropy_equals_its_reference_and_is_symmetric(case, data):
    logits, _ = case
    labels = data.draw(hnp.arrays(np.float32, logits.shape, elements=st.floats(0, 1, width=32)))
    z, y = logits.astype(np.float64), labels.astype(np.float64)
    # -[y log sigmoid(z) + (1 - y) log sigmoid(-z)], log sigmoid(z) = -log(1 + e^-z)
    want = np.mean(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))
    _close(LOSSES["binary_cross_entropy"](logits, labels), want)
    _close(LOSSES["binary_cross_entropy"](-logits, 1 - labels), want)


# -- shapes and dtypes the losses reject ---------------------------------------------------

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)


@given(st.sampled_from(["mse", "mae", "binary_cross_entropy"]), small_shapes, small_shapes)
def test_elementwise_losses_reject_mismatched_shapes_naming_both(name, p_shape, t_shape):
    assume(p_shape != t_shape and p_shape != (*t_shape, 1) and t_shape != (*p_shape, 1))
    with pytest.raises(ValueError, match=name) as err:
        LOSSES[name](np.zeros(p_shape, np.float32), np.zeros(t_shape, np.float32))
    assert str(p_shape) in str(err.value) and str(t_shape) in str(err.value)


@given(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
    small_shapes,
    st.sampled_from([np.int32, np.int64, np.uint8, np.float32, np.bool_]),
)
def test_cross_entropy_rejects_labels_of_the_wrong_shape_or_dtype(logit_shape, label_shape, dtype):
    integer = np.issubdtype(dtype, np.integer)
    valid = (
        len(logit_shape) >= 2
        and (label_shape == logit_shape[:-1] if integer else label_shape == logit_shape)
        and dtype is not np.bool_
    )
    assume(not valid)
    logits = np.zeros(logit_shape, np.float32)
    with pytest.raises(ValueError, match="cross_entropy expects") as err:
        cross_entropy(logits, np.zeros(label_shape, dtype))
    assert str(logit_shape) in str(err.value)


@given(st.sampled_from(CLASSES), st.sampled_from(BATCHES))
def test_cross_entropy_needs_a_class_axis(classes, batch):
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\)"):
        cross_entropy(np.zeros((batch,), np.float32), np.zeros(batch, np.int32))


# -- penalties and lookup --------------------------------------------------------------------


@given(st.sampled_from(WIDTHS), st.sampled_from(WIDTHS), st.data())
def test_l1_and_l2_sum_the_kernels_by_default_and_every_leaf_with_mask_true(fan_in, fan_out, data):
    params = {
        "Dense_0": {
            "kernel": data.draw(floats((fan_in, fan_out), bound=10.0)),
            "bias": data.draw(floats((fan_out,), bound=10.0)),
        },
        "BatchNorm_0": {"scale": data.draw(floats((fan_out,), bound=10.0))},
    }
    kernel = params["Dense_0"]["kernel"].astype(np.float64)
    leaves = [np.asarray(v, np.float64) for v in (kernel, params["Dense_0"]["bias"])]
    leaves.append(params["BatchNorm_0"]["scale"].astype(np.float64))
    _close(losses.l2(params), np.sum(kernel**2))
    _close(losses.l1(params), np.sum(np.abs(kernel)))
    _close(losses.l2(params, mask=True), sum(np.sum(v**2) for v in leaves))
    _close(losses.l1(params, mask=True), sum(np.sum(np.abs(v)) for v in leaves))
    with pytest.raises(ValueError, match="same tree structure"):
        losses.l2(params, mask={"Dense_0": True})


@given(st.text(max_size=12))
def test_get_resolves_every_name_and_alias_and_rejects_the_rest(name):
    known = {**{n: n for n in losses.LOSSES}, **losses.LOSS_ALIASES}
    if name in known:
        assert losses.get(name) is losses.LOSSES[known[name]]
    else:
        with pytest.raises(ValueError, match="Unknown loss"):
            losses.get(name)


@given(st.one_of(st.integers(), st.floats(), st.none(), st.lists(st.text(max_size=2))))
def test_get_rejects_what_is_neither_a_name_nor_a_callable(value):
    with pytest.raises(TypeError, match="loss must be a name or a callable"):
        losses.get(value)
