"""Residual blocks take their conv and BatchNorm as partials; the networks pass their settings."""

from functools import partial

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np

from jdl.nn import BasicBlock, Bottleneck, CifarResNet, ResNet, vgg_layer_plan

from ._helpers import random_variables, train_fn, variable_shapes


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_a_block_uses_the_conv_and_norm_it_is_given():
    x = x_of((4, 6, 6, 4))
    conv = partial(fnn.Conv, use_bias=False, dtype=jnp.bfloat16)
    block = BasicBlock(features=4, conv=conv, norm=partial(fnn.BatchNorm, momentum=0.5))
    variables = random_variables(block, x)
    variables["batch_stats"] = jax.tree_util.tree_map(jnp.zeros_like, variables["batch_stats"])

    def step(v, x):
        return block.apply(
            v, x, train=True, mutable=["batch_stats", "intermediates"],
            capture_intermediates=lambda m, _: m.name == "conv1",
        )  # fmt: skip

    _, state = jax.jit(step)(variables, x)
    assert state["intermediates"]["conv1"]["__call__"][0].dtype == jnp.bfloat16  # conv's dtype
    y = jax.lax.conv_general_dilated(
        x, jnp.asarray(variables["params"]["conv1"]["kernel"]), (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # fmt: skip
    # momentum 0.5: running mean = 0.5 * 0 + 0.5 * batch mean of conv1's output.
    np.testing.assert_allclose(
        state["batch_stats"]["bn1"]["mean"], 0.5 * y.mean((0, 1, 2)), rtol=0.05, atol=0.05
    )


def test_networks_pass_their_batch_norm_settings_to_every_block():
    x = x_of((4, 16, 16, 3))
    for model in (
        ResNet((1, 1), Bottleneck, num_outputs=3, width=4, bn_momentum=0.5),
        CifarResNet(depth=8, num_outputs=3, width=4, bn_momentum=0.5),
    ):
        variables = random_variables(model, x)
        variables["batch_stats"] = jax.tree_util.tree_map(jnp.ones_like, variables["batch_stats"])
        _, stats = train_fn(model)(variables, x, jax.random.key(0))
        # var' = m * 1 + (1 - m) * batch var; m = 0.5 gives exactly 0.5 + 0.5 * batch var
        # everywhere, the default m = 0.9 would give 0.9 + 0.1 * batch var >= 0.9.
        last = "layer2_0" if isinstance(model, ResNet) else "layer3_0"
        assert float(jnp.min(stats[last]["bn1"]["var"])) < 0.9
        assert float(jnp.min(stats[last]["bn1"]["var"])) >= 0.5


def test_block_parameter_names_are_unchanged():
    shapes = variable_shapes(Bottleneck(features=2, strides=2), jnp.ones((1, 8, 8, 4)))
    names = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample_conv", "downsample_bn"}
    assert set(shapes["params"]) == names
    assert set(shapes["batch_stats"]) == names - {"conv1", "conv2", "conv3", "downsample_conv"}


def test_vgg_layer_plan_names_keras_layers_and_the_model_follows_it():
    plan = vgg_layer_plan("vgg16")
    convs = [name for name, width in plan if width is not None]
    pools = [name for name, width in plan if width is None]
    assert convs[:3] == ["block1_conv1", "block1_conv2", "block2_conv1"]
    assert convs[-1] == "block5_conv3" and len(convs) == 13
    assert pools == [f"block{b}_pool" for b in range(1, 6)]
    assert [w for _, w in plan if w is not None][-1] == 512
    from jdl.nn import VGG

    model = VGG((4, "M", 8, 8, "M"), classifier=(), num_outputs=2, batch_norm=True)
    params = variable_shapes(model, jnp.ones((1, 8, 8, 3)))["params"]
    plan = vgg_layer_plan(model.config)
    expected = {n for n, w in plan if w} | {n.replace("_conv", "_bn") for n, w in plan if w}
    assert set(params) == expected | {"head"}
