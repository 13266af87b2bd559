"""replace_head, freeze (optax.multi_transform), FreezeBatchNorm, finetune_state."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import nn, pretrained, train

from .conftest import random_variables


def test_replace_head_keeps_the_backbone_and_makes_a_new_head():
    model = nn.CNN(features=(4, 4), num_outputs=5, ndim=1, batch_norm=True)
    variables = random_variables(model, (1, 12))
    new_model, new = pretrained.replace_head(model, variables, 3, input_shape=(1, 12), seed=1)
    assert new_model.num_outputs == 3 and new_model.features == model.features
    assert new["params"]["head"]["kernel"].shape == (4 * 12, 3)
    assert new["params"]["head"]["bias"].shape == (3,)
    assert not np.allclose(new["params"]["head"]["kernel"], 1.0)  # freshly initialised
    for name in ("Conv_0", "Conv_1", "BatchNorm_0"):
        jax.tree_util.tree_map(
            np.testing.assert_array_equal, new["params"][name], variables["params"][name]
        )
    assert new["batch_stats"] is variables["batch_stats"]
    out = new_model.apply(new, np.ones((2, 12), np.float32), train=False)
    assert out.shape == (2, 3)


def test_replace_head_on_resnet_infers_the_input_and_checks_sizes():
    model = nn.ResNet(stage_sizes=(1,), num_outputs=10, width=4)
    variables = random_variables(model, (1, 32, 32, 3))
    new_model, new = pretrained.replace_head(model, variables, 2)
    assert new["params"]["fc"]["kernel"].shape == (4, 2) and new_model.num_outputs == 2
    cnn = nn.CNN(features=(4,), num_outputs=5, ndim=1)
    v = random_variables(cnn, (1, 12))
    with pytest.raises(ValueError, match="input_shape="):
        pretrained.replace_head(cnn, v, 3)
    with pytest.raises(ValueError, match="pass the input_shape the model was trained on"):
        pretrained.replace_head(cnn, v, 3, input_shape=(1, 20))
    with pytest.raises(TypeError, match="head_name"):
        pretrained.replace_head(object(), v, 3)


def test_freeze_trains_only_the_named_parameters():
    model = nn.MLP(widths=(8, 8), num_outputs=3)
    params = random_variables(model, (1, 4))["params"]
    tx = pretrained.freeze(optax.adam(0.1), ["head", "Dense_1/bias"])
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, state = tx.update(grads, tx.init(params), params)
    zero = lambda t: all(np.all(np.asarray(a) == 0) for a in jax.tree_util.tree_leaves(t))  # noqa: E731
    assert zero(updates["Dense_0"]) and zero(updates["Dense_1"]["kernel"])
    assert not zero(updates["head"]) and not zero(updates["Dense_1"]["bias"])
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1, rtol=1e-5)  # Adam's first step
    # Adam keeps moments for the trained leaves only.
    sizes = sum(np.size(x) for x in jax.tree_util.tree_leaves(state) if np.ndim(x) > 0)
    assert sizes == 2 * (8 * 3 + 3 + 8)


def test_freeze_by_glob_and_unknown_names():
    params = {
        "layer3_0": {"k": jnp.ones(2)},
        "layer4_0": {"k": jnp.ones(2)},
        "fc": {"k": jnp.ones(2)},
    }
    labels = pretrained.trainable_mask(params, ["layer4*", "fc"])
    assert labels == {"layer3_0": {"k": "freeze"}, "layer4_0": {"k": "train"}, "fc": {"k": "train"}}
    with pytest.raises(ValueError, match="names no parameter"):
        pretrained.freeze(optax.sgd(0.1), ["head"]).init(params)


def test_freeze_batchnorm_keeps_frozen_statistics_and_uses_them():
    model = nn.CNN(features=(4, 4), num_outputs=2, ndim=1, batch_norm=True)
    variables = random_variables(model, (1, 12))
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 12)).astype(np.float32)
    frozen = pretrained.FreezeBatchNorm(model, trainable=("BatchNorm_1", "head"))
    out, upd = frozen.apply(variables, x, train=True, mutable=["batch_stats"])
    stats, old = upd["batch_stats"], variables["batch_stats"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, stats["BatchNorm_0"], old["BatchNorm_0"])
    assert not np.allclose(stats["BatchNorm_1"]["mean"], old["BatchNorm_1"]["mean"])
    # Everything frozen: training mode computes exactly the evaluation-mode output.
    all_frozen = pretrained.FreezeBatchNorm(model)
    train_out, _ = all_frozen.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(train_out, model.apply(variables, x, train=False), rtol=1e-6)
    assert not np.allclose(out, model.apply(variables, x, train=False))
    # Same variables as the wrapped model: no extra nesting.
    shapes = jax.eval_shape(lambda: frozen.init(jax.random.key(0), x, train=False))
    assert set(shapes["params"]) == set(variables["params"])
    assert frozen.num_outputs == 2 and frozen.head_name == "head"


def test_fine_tuning_with_train_step_moves_only_the_head():
    model = nn.CNN(features=(4,), num_outputs=5, ndim=1, batch_norm=True)
    variables = random_variables(model, (1, 12))
    model, variables = pretrained.replace_head(model, variables, 3, input_shape=(1, 12))
    wrapped = pretrained.FreezeBatchNorm(model, trainable=("head",))
    tx = pretrained.freeze(optax.adam(1e-2), ["head"])
    state = pretrained.finetune_state(wrapped, variables, tx)
    step = jax.jit(functools.partial(train.train_step, loss_fn="cross_entropy"))
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(16, 12)).astype(np.float32), "y": rng.integers(0, 3, 16)}
    losses = []
    for _ in range(20):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(
        state.params["Conv_0"]["kernel"], variables["params"]["Conv_0"]["kernel"]
    )
    np.testing.assert_array_equal(
        state.batch_stats["BatchNorm_0"]["mean"], variables["batch_stats"]["BatchNorm_0"]["mean"]
    )
    assert not np.allclose(state.params["head"]["kernel"], variables["params"]["head"]["kernel"])
