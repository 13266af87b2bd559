"""Tests for jdl.nn.VGG and the vgg11/13/16/19 constructors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import VGG, count_params, vgg11, vgg13, vgg16, vgg19

from ._helpers import capture, random_variables, run, shapes_of, train_fn, variable_shapes

IMAGENET = jnp.ones((1, 224, 224, 3))
SMALL = (8, "M", 16, "M")


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize(
    ("constructor", "expected"),
    [(vgg11, 132_863_336), (vgg13, 133_047_848), (vgg16, 138_357_544), (vgg19, 143_667_240)],
)
def test_torchvision_parameter_counts(constructor, expected):
    shapes = variable_shapes(constructor(), IMAGENET)
    assert count_params(shapes) == expected
    assert "batch_stats" not in shapes


def test_vgg16_bn_counts_and_names():
    shapes = variable_shapes(vgg16(batch_norm=True), IMAGENET)
    bn_channels = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512
    assert count_params(shapes) == 138_357_544 + 2 * bn_channels  # torchvision: 138,365,992
    assert count_params(shapes["batch_stats"]) == 2 * bn_channels
    params = shapes_of(shapes["params"])
    assert params["block1_conv1"] == {"kernel": (3, 3, 3, 64), "bias": (64,)}
    assert params["block1_bn1"] == {"scale": (64,), "bias": (64,)}
    assert params["block5_conv3"]["kernel"] == (3, 3, 512, 512)
    assert params["fc1"]["kernel"] == (7 * 7 * 512, 4096)
    assert params["fc2"]["kernel"] == (4096, 4096)
    assert params["head"]["kernel"] == (4096, 1000)
    convs = sorted(k for k in params if "_conv" in k)
    assert len(convs) == 13 and "block4_conv3" in convs and "block4_conv4" not in convs


def test_config_by_letter_and_custom_config():
    assert shapes_of(variable_shapes(VGG("D"), IMAGENET)) == shapes_of(
        variable_shapes(vgg16(), IMAGENET)
    )
    shapes = variable_shapes(VGG((4, 4, "M", 8), num_outputs=3, classifier=(5,)), x_of((1, 6, 6)))
    assert shapes_of(shapes["params"]) == {
        "block1_conv1": {"kernel": (3, 3, 1, 4), "bias": (4,)},
        "block1_conv2": {"kernel": (3, 3, 4, 4), "bias": (4,)},
        "block2_conv1": {"kernel": (3, 3, 4, 8), "bias": (8,)},
        "fc1": {"kernel": (3 * 3 * 8, 5), "bias": (5,)},
        "head": {"kernel": (5, 3), "bias": (3,)},
    }


def test_cifar_sized_vgg11_with_small_classifier():
    model = vgg11(num_outputs=10, classifier=(64,))
    shapes = variable_shapes(model, jnp.ones((1, 32, 32, 3)))
    assert shapes["params"]["fc1"]["kernel"].shape == (512, 64)  # 32 / 2^5 = 1
    out = jax.eval_shape(lambda v: model.apply(v, jnp.ones((4, 32, 32, 3)), train=False), shapes)
    assert out.shape == (4, 10)


def test_forward_flattens_height_width_channels():
    # One conv block on 4x4 images -> feature map (2, 2, 4) -> 16 features in (h, w, c) order.
    model = VGG((4, "M"), num_outputs=1, classifier=(), dropout=0.0)
    x = x_of((3, 4, 4, 2))
    variables = random_variables(model, x)
    conv, _ = capture(model, variables, x, "block1_conv1")
    conv = np.maximum(conv, 0)
    pooled = conv.reshape(3, 2, 2, 2, 2, 4).max(axis=(2, 4))  # (batch, h, w, c)
    head = variables["params"]["head"]
    kernel = np.zeros((16, 1), np.float32)
    h, w, c = 1, 0, 3
    kernel[(h * 2 + w) * 4 + c] = 1.0
    new_vars = {"params": {**variables["params"], "head": {"kernel": kernel, "bias": head["bias"]}}}
    out = run(model, new_vars, x, train=False)
    np.testing.assert_allclose(out[:, 0], pooled[:, h, w, c] + head["bias"][0], rtol=1e-5)


def test_conv_padding_is_one():
    model = VGG((2,), num_outputs=1, classifier=())
    x = x_of((1, 5, 5, 1))
    variables = random_variables(model, x)
    conv, _ = capture(model, variables, x, "block1_conv1")
    assert conv.shape == (1, 5, 5, 2)
    k = np.asarray(variables["params"]["block1_conv1"]["kernel"])[:, :, 0, 0]
    b = float(variables["params"]["block1_conv1"]["bias"][0])
    xp = np.pad(np.asarray(x)[0, :, :, 0], 1)
    np.testing.assert_allclose(conv[0, 0, 0, 0], (xp[0:3, 0:3] * k).sum() + b, rtol=1e-5)
    np.testing.assert_allclose(conv[0, 4, 2, 0], (xp[4:7, 2:5] * k).sum() + b, rtol=1e-5)


def test_dropout_batch_norm_and_bfloat16():
    model = VGG(SMALL, num_outputs=3, classifier=(16,), dropout=0.5, batch_norm=True)
    x = x_of((4, 8, 8, 3))
    variables = random_variables(model, x)
    train = train_fn(model)
    out1, stats = train(variables, x, jax.random.key(1))
    out2, _ = train(variables, x, jax.random.key(2))
    assert float(jnp.abs(out1 - out2).max()) > 1e-4
    assert set(stats) == {"block1_bn1", "block2_bn1"}
    assert float(jnp.abs(stats["block1_bn1"]["mean"]).max()) > 0
    eval_out = run(model, variables, x, train=False)
    np.testing.assert_array_equal(eval_out, run(model, variables, x, train=False))
    out16 = run(model.clone(dtype=jnp.bfloat16), variables, x, train=False)
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(out16.astype(jnp.float32), eval_out, atol=0.1, rtol=0.05)


def test_default_initialisation_follows_torchvision():
    model = VGG((64, "M"), num_outputs=10, classifier=(256,))
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(
        jnp.ones((1, 4, 4, 3))
    )
    conv = np.asarray(variables["params"]["block1_conv1"]["kernel"])
    assert abs(conv.std() / np.sqrt(2 / (9 * 64)) - 1) < 0.1  # He normal, fan-out
    fc = np.asarray(variables["params"]["fc1"]["kernel"])
    assert abs(fc.std() / 0.01 - 1) < 0.05  # N(0, 0.01^2)
    assert not np.asarray(variables["params"]["fc1"]["bias"]).any()


def test_errors():
    with pytest.raises(ValueError, match="unknown VGG configuration 'vgg17'.*vgg11, vgg13"):
        VGG("vgg17")
    with pytest.raises(ValueError, match=r"config\[1\] = 'P'"):
        VGG((8, "P"))
    model = VGG(SMALL, num_outputs=2, classifier=())
    with pytest.raises(ValueError, match=r"VGG expects inputs of shape .* got shape \(8, 8\)"):
        variable_shapes(model, jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="too small"):
        variable_shapes(model, jnp.ones((1, 3, 3, 3)))
    variables = random_variables(model, jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"VGG expects images with 3 channels"):
        model.apply(variables, jnp.ones((1, 8, 8, 1)), train=False)
    with pytest.raises(ValueError, match="initialised on images of another size"):
        model.apply(variables, jnp.ones((1, 16, 16, 3)), train=False)
