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
