"""Losses against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import losses


def test_mse_and_mae_hand_values():
    pred = jnp.array([[1.0, 2.0], [3.0, 5.0]])
    target = jnp.array([[1.0, 0.0], [0.0, 5.0]])
    # squared errors: 0, 4, 9, 0 -> mean 13/4 ; abs errors 0,2,3,0 -> 5/4
    assert float(losses.mse(pred, target)) == pytest.approx(13 / 4)
    assert float(losses.mae(pred, target)) == pytest.approx(5 / 4)


def test_regression_head_of_width_one_against_flat_targets():
    pred = jnp.array([[1.0], [2.0], [4.0]])
    target = jnp.array([0.0, 2.0, 2.0])
    # Without the reshape, broadcasting would compare every pair (9 terms).
    assert float(losses.mse(pred, target)) == pytest.approx((1 + 0 + 4) / 3)


def test_shape_mismatch_is_rejected_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 4\)"):
        losses.mse(jnp.zeros((3, 2)), jnp.zeros((3, 4)))


def test_where_mask_ignores_padded_examples():
    pred = jnp.array([1.0, 2.0, 100.0])
    target = jnp.array([0.0, 0.0, 0.0])
    got = losses.mse(pred, target, where=jnp.array([True, True, False]))
    assert float(got) == pytest.approx((1 + 4) / 2)
    with pytest.raises(ValueError, match="one entry per example"):
        losses.mse(pred, target, where=jnp.array([True, False]))


def test_binary_cross_entropy_hand_value_and_stability():
    logits = jnp.array([0.0, 2.0, -1.0])
    labels = jnp.array([1.0, 0.0, 0.0])
    expected = np.mean(
        [
            -math.log(0.5),
            -math.log(1 - 1 / (1 + math.exp(-2))),
            -math.log(1 - 1 / (1 + math.exp(1))),
        ]
    )
    assert float(losses.binary_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
    # Huge logits: the naive formula gives inf/nan, the stable one the exact limit.
    big = losses.binary_cross_entropy(jnp.array([1000.0, -1000.0]), jnp.array([0.0, 1.0]))
    assert float(big) == pytest.approx(1000.0)
    grad = jax.grad(losses.binary_cross_entropy)(
        jnp.array([1000.0, -1000.0]), jnp.array([1.0, 0.0])
    )
    assert np.all(np.isfinite(grad))


def test_cross_entropy_integer_and_one_hot_agree_with_hand_value():
    logits = jnp.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    labels = jnp.array([2, 0])
    lse0 = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    lse1 = math.log(math.e + 2)
    expected = ((lse0 - 3.0) + (lse1 - 1.0)) / 2
    assert float(losses.cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
    one_hot = jax.nn.one_hot(labels, 3)
    assert float(losses.cross_entropy(logits, one_hot)) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_uniform_logits_is_log_classes():
    for c in (2, 3, 10):
        got = losses.cross_entropy(jnp.zeros((4, c)), jnp.zeros((4,), jnp.int32))
        assert float(got) == pytest.approx(math.log(c), rel=1e-6)


def test_label_smoothing_hand_value():
    logits = jnp.array([[2.0, 0.0]])
    eps = 0.2
    logp = jax.nn.log_softmax(logits)[0]
    target = np.array([1 - eps + eps / 2, eps / 2])
    expected = -float(np.sum(target * np.asarray(logp)))
    got = losses.cross_entropy(logits, jnp.array([0]), label_smoothing=eps)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        losses.cross_entropy(logits, jnp.array([0]), label_smoothing=1.0)


def test_cross_entropy_bad_shapes():
    with pytest.raises(ValueError, match="integer labels of shape"):
        losses.cross_entropy(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))
    with pytest.raises(ValueError, match="binary_cross_entropy"):
        losses.cross_entropy(jnp.zeros((4,)), jnp.zeros((4,), jnp.int32))


def test_losses_are_jittable():
    logits = jnp.array([[0.5, -0.5], [1.0, 2.0]])
    labels = jnp.array([0, 1])
    for fn, args in [
        (losses.cross_entropy, (logits, labels)),
        (losses.binary_cross_entropy, (logits[:, 0], labels.astype(jnp.float32))),
        (losses.mse, (logits, logits + 1)),
        (losses.mae, (logits, logits + 1)),
    ]:
        np.testing.assert_allclose(jax.jit(fn)(*args), fn(*args), rtol=1e-6)


def test_l1_l2_skip_biases_by_default():
    params = {
        "Dense_0": {
            "kernel": jnp.array([[1.0, -2.0], [3.0, 0.0]]),
            "bias": jnp.array([10.0, 10.0]),
        },
        "BatchNorm_0": {"scale": jnp.array([5.0, 5.0]), "bias": jnp.array([1.0, 1.0])},
    }
    assert float(losses.l1(params)) == pytest.approx(6.0)
    assert float(losses.l2(params)) == pytest.approx(1 + 4 + 9)
    assert float(losses.l1(params, mask=True)) == pytest.approx(6 + 20 + 10 + 2)
    custom = {
        "Dense_0": {"kernel": False, "bias": True},
        "BatchNorm_0": {"scale": False, "bias": False},
    }
    assert float(losses.l2(params, mask=custom)) == pytest.approx(200.0)
    assert float(jax.jit(losses.l2)(params)) == pytest.approx(14.0)
    with pytest.raises(ValueError, match="same tree structure"):
        losses.l2(params, mask={"Dense_0": True})


def test_l2_gradient_is_twice_the_weight():
    params = {"w": jnp.array([[1.0, -3.0]])}
    grad = jax.grad(losses.l2)(params)
    np.testing.assert_allclose(grad["w"], 2 * params["w"])


def test_get_by_name():
    assert losses.get("mse") is losses.mse
    fn = lambda p, t: p  # noqa: E731
    assert losses.get(fn) is fn
    with pytest.raises(ValueError, match="cross_entropy"):
        losses.get("crossentropy")
    with pytest.raises(TypeError):
        losses.get(3)


def test_short_and_keras_loss_names_are_aliases_listed_in_the_error():
    assert losses.get("ce") is losses.cross_entropy
    assert losses.get("sparse_categorical_crossentropy") is losses.cross_entropy
    assert losses.get("bce") is losses.binary_cross_entropy
    assert losses.get("mean_squared_error") is losses.mse
    for alias, name in losses.LOSS_ALIASES.items():
        assert losses.get(alias) is losses.LOSSES[name]
    with pytest.raises(ValueError, match=r"'ce' \(cross_entropy\).*'bce'"):
        losses.get("xent")


def _one_hot_cross_entropy(logits, labels, eps=0.0, where=None):
    """The reference: the smoothed one-hot target against log-softmax, masked mean."""
    num_classes = logits.shape[-1]
    target = (1 - eps) * jax.nn.one_hot(labels, num_classes) + eps / num_classes
    per = -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)
    if where is None:
        return jnp.mean(per)
    return jnp.sum(per * where) / jnp.sum(where)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("masked", [False, True])
def test_integer_labels_match_the_one_hot_form_in_value_and_gradient(eps, masked):
    key_z, key_y, key_m = jax.random.split(jax.random.PRNGKey(3), 3)
    logits = 4.0 * jax.random.normal(key_z, (33, 7))
    labels = jax.random.randint(key_y, (33,), 0, 7)
    where = jax.random.bernoulli(key_m, 0.6, (33,)) if masked else None

    def integer(z):
        return losses.cross_entropy(z, labels, label_smoothing=eps, where=where)

    def one_hot(z):
        return losses.cross_entropy(z, jax.nn.one_hot(labels, 7), label_smoothing=eps, where=where)

    expected = _one_hot_cross_entropy(logits, labels, eps, where)
    np.testing.assert_allclose(integer(logits), expected, rtol=1e-5)
    np.testing.assert_allclose(one_hot(logits), expected, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(integer)(logits), expected, rtol=1e-5)
    ref_grad = jax.grad(lambda z: _one_hot_cross_entropy(z, labels, eps, where))(logits)
    np.testing.assert_allclose(jax.grad(integer)(logits), ref_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jax.grad(one_hot)(logits), ref_grad, rtol=1e-5, atol=1e-7)


def test_traced_label_smoothing_matches_the_one_hot_form():
    logits = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
    labels = jnp.arange(16) % 5
    got = jax.jit(lambda e: losses.cross_entropy(logits, labels, label_smoothing=e))(0.2)
    np.testing.assert_allclose(got, _one_hot_cross_entropy(logits, labels, 0.2), rtol=1e-5)


def test_integer_labels_stay_exact_for_huge_logits():
    # Shifting by the row maximum keeps lse - z_y exact where logsumexp(z) - z_y would
    # lose the small difference of two numbers near 1e4 to float32 rounding.
    logits = jnp.array([[1e4, 1e4 - 1.0, 1e4 - 30.0]])
    expected = math.log(1 + math.exp(-1.0) + math.exp(-30.0))
    got = losses.cross_entropy(logits, jnp.array([0]))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_labels_outside_the_classes_give_nan_not_another_class():
    logits = jnp.zeros((3, 4))
    per_label = [float(losses.cross_entropy(logits[:1], jnp.array([k]))) for k in (-1, 4, 3)]
    assert math.isnan(per_label[0]) and math.isnan(per_label[1])
    assert per_label[2] == pytest.approx(math.log(4))


def _eqns(jaxpr):
    """Every equation of a (closed) jaxpr, those of nested jaxprs (jit, custom_jvp) too."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def _class_grid_eqns(fn, *args):
    """The iota / eq equations with a class axis: how a one-hot of the labels is built."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return [
        eqn.primitive.name
        for eqn in _eqns(jaxpr)
        if eqn.primitive.name in ("iota", "eq")
        and any(getattr(v.aval, "shape", ())[-1:] == (7,) for v in eqn.outvars)
    ]


def test_integer_path_builds_no_one_hot_in_forward_or_backward():
    logits, labels = jnp.zeros((12, 7)), jnp.zeros((12,), jnp.int32)
    for eps in (0.0, 0.1):

        def loss(z, y, eps=eps):
            return losses.cross_entropy(z, y, label_smoothing=eps)

        assert _class_grid_eqns(loss, logits, labels) == []
        assert _class_grid_eqns(jax.grad(loss), logits, labels) == []
    # The check sees a one-hot where there is one: the reference builds it.
    assert "eq" in _class_grid_eqns(_one_hot_cross_entropy, logits, labels)
    assert "iota" in _class_grid_eqns(_one_hot_cross_entropy, logits, labels)
