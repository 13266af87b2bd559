"""Tests for jdl.nn.ResNet (torchvision layout), its blocks, and jdl.nn.CifarResNet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    ResNet,
    count_params,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)

from ._helpers import capture, random_variables, run, shapes_of, train_fn, variable_shapes

IMAGENET = jnp.ones((1, 224, 224, 3))
CIFAR = jnp.ones((1, 32, 32, 3))


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def tiny_resnet(**kwargs):
    return ResNet((1, 1), BasicBlock, num_outputs=3, width=4, **kwargs)


def intermediate_shapes(model, x, variables=None):
    """Output shapes of every submodule's __call__, without running anything."""
    if variables is None:
        variables = variable_shapes(model, x)
    _, state = jax.eval_shape(
        lambda v: model.apply(v, x, train=False, capture_intermediates=True), variables
    )
    flat = jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]
    return {
        "/".join(str(p.key) for p in path[:-2]): leaf.shape
        for path, leaf in flat
        if path[-2].key == "__call__"
    }


@pytest.mark.parametrize(
    ("constructor", "params", "buffers"),
    [
        (resnet18, 11_689_512, 9_600),
        (resnet34, 21_797_672, 17_024),
        (resnet50, 25_557_032, 53_120),
        (resnet101, 44_549_160, 105_344),
        (resnet152, 60_192_808, 151_424),
    ],
)
def test_torchvision_parameter_counts(constructor, params, buffers):
    shapes = variable_shapes(constructor(), IMAGENET)
    assert count_params(shapes) == params
    # running_mean + running_var of every BatchNorm (torchvision's buffers, minus
    # num_batches_tracked).
    assert count_params(shapes["batch_stats"]) == buffers


def torchvision_state_dict_shapes(block, layers, num_classes=1000):
    """The (key -> shape) of torchvision's resnet state dict, rebuilt from its source."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)

    bn("bn1", 64)
    inplanes, expansion = 64, 1 if block == "basic" else 4
    for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True), start=1):
        for i in range(n):
            stride = 2 if s > 1 and i == 0 else 1
            p = f"layer{s}.{i}"
            if block == "basic":
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            else:
                convs = [
                    (planes, inplanes, 1, 1),
                    (planes, planes, 3, 3),
                    (planes * 4, planes, 1, 1),
                ]
            for j, shape in enumerate(convs, start=1):
                shapes[f"{p}.conv{j}.weight"] = shape
                bn(f"{p}.bn{j}", shape[0])
            if stride != 1 or inplanes != planes * expansion:
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (num_classes, inplanes)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def torch_key_to_jdl(key, shape):
    """Map one torchvision key and shape to (collection, path, shape) in jdl's layout."""
    parts = key.split(".")
    if parts[0].startswith("layer"):
        parts = [f"{parts[0]}_{parts[1]}", *parts[2:]]
    if "downsample" in parts:
        k = parts.index("downsample")
        parts[k : k + 2] = [{"0": "downsample_conv", "1": "downsample_bn"}[parts[k + 1]]]
    *modules, leaf = parts
    collection = "params"
    if leaf == "weight" and len(shape) == 4:
        leaf, shape = "kernel", (shape[2], shape[3], shape[1], shape[0])  # OIHW -> HWIO
    elif leaf == "weight" and modules == ["fc"]:
        leaf, shape = "kernel", shape[::-1]
    elif leaf == "weight":
        leaf = "scale"
    elif leaf in ("running_mean", "running_var"):
        collection, leaf = "batch_stats", leaf.removeprefix("running_")
    return (collection, *modules, leaf), shape


@pytest.mark.parametrize(
    ("constructor", "block", "layers"),
    [(resnet18, "basic", (2, 2, 2, 2)), (resnet50, "bottleneck", (3, 4, 6, 3))],
)
def test_one_to_one_mapping_from_torchvision_state_dicts(constructor, block, layers):
    ours = {
        tuple(p.key for p in path): leaf.shape
        for path, leaf in jax.tree_util.tree_flatten_with_path(
            variable_shapes(constructor(), IMAGENET)
        )[0]
    }
    mapped = dict(
        torch_key_to_jdl(k, s) for k, s in torchvision_state_dict_shapes(block, layers).items()
    )
    assert len(mapped) == len(ours)
    assert mapped == ours


def test_block_structure_and_submodule_names():
    params = shapes_of(variable_shapes(resnet18(), IMAGENET)["params"])
    assert set(params) == {
        "conv1", "bn1", "fc",
        *(f"layer{s}_{i}" for s in (1, 2, 3, 4) for i in (0, 1)),
    }  # fmt: skip
    assert set(params["layer1_0"]) == {"conv1", "bn1", "conv2", "bn2"}
    assert set(params["layer2_0"]) == {
        "conv1", "bn1", "conv2", "bn2", "downsample_conv", "downsample_bn",
    }  # fmt: skip
    assert params["conv1"] == {"kernel": (7, 7, 3, 64)}  # no conv biases anywhere
    r50 = shapes_of(variable_shapes(resnet50(), IMAGENET)["params"])
    assert r50["layer1_0"]["downsample_conv"] == {"kernel": (1, 1, 64, 256)}
    assert "downsample_conv" not in r50["layer1_1"]
    assert r50["layer4_2"]["conv3"] == {"kernel": (1, 1, 512, 2048)}
    assert r50["fc"] == {"kernel": (2048, 1000), "bias": (1000,)}


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1  # PyTorch's convolution / pooling output size


@pytest.mark.parametrize("size", [224, 225, 97, 33])
def test_spatial_sizes_follow_pytorch(size):
    shapes = intermediate_shapes(resnet18(), jnp.ones((1, size, size, 3)))
    stem = out_size(size, 7, 2, 3)
    pooled = out_size(stem, 3, 2, 1)
    assert shapes["conv1"][1:3] == (stem, stem)
    assert shapes["layer1_0"][1:3] == (pooled, pooled)
    n = pooled
    for s in (2, 3, 4):
        n = out_size(n, 3, 2, 1)
        assert shapes[f"layer{s}_0"][1:3] == (n, n)
    if size == 224:
        assert (stem, pooled, n) == (112, 56, 7)


def test_bottleneck_strides_on_the_3x3_conv():
    shapes = intermediate_shapes(resnet50(), IMAGENET)
    assert shapes["layer2_0/conv1"] == (1, 56, 56, 128)  # v1.5: the 1x1 conv keeps the size
    assert shapes["layer2_0/conv2"] == (1, 28, 28, 128)
    assert shapes["layer2_0/conv3"] == (1, 28, 28, 512)
    assert shapes["layer2_0/downsample_conv"] == (1, 28, 28, 512)


def test_stride_in_1x1_puts_the_stride_on_the_first_conv_v1():
    v1, v15 = resnet50(stride_in_1x1=True), resnet50()
    shapes = intermediate_shapes(v1, IMAGENET)
    assert shapes["layer2_0/conv1"] == (1, 28, 28, 128)  # v1: the 1x1 conv subsamples
    assert shapes["layer2_0/conv2"] == (1, 28, 28, 128)
    assert shapes["layer2_0/downsample_conv"] == (1, 28, 28, 512)
    assert shapes["layer1_0/conv1"] == (1, 56, 56, 64)  # stride-1 blocks are unchanged
    assert shapes_of(variable_shapes(v1, IMAGENET)) == shapes_of(variable_shapes(v15, IMAGENET))


def test_v1_bottleneck_conv1_is_a_strided_1x1_conv_and_differs_from_v15():
    x = x_of((2, 8, 8, 4))
    block = Bottleneck(features=2, strides=2, stride_in_1x1=True)
    variables = random_variables(block, x)

    def conv1_and_out(block):
        def fn(v, inputs):
            out, state = block.apply(
                v, inputs, train=False, capture_intermediates=lambda m, _: m.name == "conv1"
            )
            return state["intermediates"]["conv1"]["__call__"][0], out

        return jax.jit(fn)(variables, x)

    conv1, out_v1 = conv1_and_out(block)
    kernel = np.asarray(variables["params"]["conv1"]["kernel"])[0, 0]
    expected = np.einsum("nhwc,co->nhwo", np.asarray(x)[:, ::2, ::2], kernel)
    np.testing.assert_allclose(conv1, expected, rtol=1e-5, atol=1e-5)
    conv1_v15, out_v15 = conv1_and_out(block.clone(stride_in_1x1=False))
    assert conv1_v15.shape == (2, 8, 8, 2)
    assert out_v1.shape == out_v15.shape == (2, 4, 4, 8)
    assert float(jnp.abs(out_v1 - out_v15).max()) > 1e-3


def test_stride_in_1x1_is_for_bottlenecks_only():
    assert ResNet((1, 1), Bottleneck, stride_in_1x1=True).stride_in_1x1
    with pytest.raises(ValueError, match="stride_in_1x1=True .* Bottleneck blocks only"):
        ResNet((1, 1), BasicBlock, stride_in_1x1=True)


def test_stem_padding_is_symmetric():
    model = tiny_resnet()
    x = x_of((2, 16, 16, 3))
    variables = random_variables(model, x)
    kernel = np.zeros((7, 7, 3, 4), np.float32)
    kernel[3, 3, 0, 0] = 1.0  # output channel 0 copies input channel 0 at the window centre
    variables["params"]["conv1"]["kernel"] = kernel
    conv, _ = capture(model, variables, x, "conv1")
    assert conv.shape == (2, 8, 8, 4)
    # Padding 3 on both sides: output (i, j) is centred on input (2i, 2j). ('SAME' would pad
    # (2, 3) on this even size and centre it on (2i + 1, 2j + 1).)
    np.testing.assert_allclose(conv[..., 0], np.asarray(x)[:, ::2, ::2, 0], rtol=1e-6)


def test_batch_norm_settings_match_pytorch():
    model = tiny_resnet()
    x = x_of((4, 16, 16, 3))
    variables = random_variables(model, x)
    _, stats = train_fn(model)(variables, x, jax.random.key(0))
    conv, _ = capture(model, variables, x, "conv1")
    # momentum 0.9: running = 0.9 * running + 0.1 * batch statistic.
    np.testing.assert_allclose(stats["bn1"]["mean"], 0.1 * conv.mean((0, 1, 2)), atol=1e-5)
    # epsilon 1e-5: eval output = (x - mean) / sqrt(var + 1e-5) * scale + bias.
    variables["batch_stats"]["bn1"] = {
        "mean": np.full(4, 0.5, np.float32),
        "var": np.zeros(4, np.float32),
    }
    bn, _ = capture(model, variables, x, "bn1")
    bias = np.asarray(variables["params"]["bn1"]["bias"])
    np.testing.assert_allclose(bn, (conv - 0.5) / np.sqrt(1e-5) + bias, rtol=1e-4)


def test_default_initialisation_and_zero_init_residual():
    model = ResNet((1,), Bottleneck, num_outputs=3, width=8, zero_init_residual=True)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(
        jnp.ones((1, 16, 16, 3))
    )
    p = variables["params"]
    assert not np.asarray(p["layer1_0"]["bn3"]["scale"]).any()
    np.testing.assert_array_equal(p["layer1_0"]["bn1"]["scale"], np.ones(8))
    np.testing.assert_array_equal(p["layer1_0"]["downsample_bn"]["scale"], np.ones(32))
    assert not np.asarray(p["fc"]["bias"]).any()
    assert float(np.abs(p["fc"]["kernel"]).max()) <= 1 / np.sqrt(32)  # "standard" init
    stem = np.asarray(p["conv1"]["kernel"])
    assert abs(stem.std() / np.sqrt(2 / (49 * 8)) - 1) < 0.15  # He normal, fan-out


def test_blocks_with_a_zeroed_residual_branch_reduce_to_their_shortcut():
    x = jnp.abs(x_of((2, 6, 6, 4)))

    def block_out(block, x):
        variables = random_variables(block, x)
        last = "bn3" if isinstance(block, Bottleneck) else "bn2"
        params = variables["params"]
        params[last] = {k: np.zeros_like(v) for k, v in params[last].items()}
        return variables, np.asarray(run(block, variables, x, train=False))

    _, out = block_out(BasicBlock(features=4), x)
    np.testing.assert_allclose(out, x, rtol=1e-6)  # identity shortcut
    _, out = block_out(BasicBlock(features=8, strides=2, shortcut="pad"), x)
    expected = np.pad(np.asarray(x)[:, ::2, ::2], ((0, 0), (0, 0), (0, 0), (2, 2)))
    np.testing.assert_allclose(out, expected, rtol=1e-6)  # option A
    variables, out = block_out(BasicBlock(features=8, strides=2), x)
    assert out.shape == (2, 3, 3, 8) and "downsample_conv" in variables["params"]
    _, out = block_out(BasicBlock(features=8, strides=2, shortcut="none"), x)
    assert not out.any()  # plain: nothing but the (zeroed) residual branch
    variables, out = block_out(Bottleneck(features=2), x)
    np.testing.assert_allclose(out.shape, (2, 6, 6, 8))
    assert "downsample_conv" in variables["params"]  # 4 -> 8 channels needs a projection


def test_train_eval_and_bfloat16_forward():
    model = tiny_resnet()
    x = x_of((4, 16, 16, 3))
    variables = random_variables(model, x)
    out_train, stats = train_fn(model)(variables, x, jax.random.key(0))
    assert out_train.shape == (4, 3)
    assert set(stats) == set(variables["batch_stats"])
    eval_out = run(model, variables, x, train=False)
    assert float(jnp.abs(out_train - eval_out).max()) > 1e-3
    out16 = run(model.clone(dtype=jnp.bfloat16), variables, x, train=False)
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(out16.astype(jnp.float32), eval_out, atol=0.15, rtol=0.1)


def test_resnet_errors():
    with pytest.raises(
        ValueError, match=r"expects inputs of shape \(batch, height, width, channels"
    ):
        variable_shapes(tiny_resnet(), jnp.ones((16, 16)))
    model = tiny_resnet()
    variables = random_variables(model, jnp.ones((1, 16, 16, 3)))
    with pytest.raises(ValueError, match=r"ResNet expects images with 3 channels .* \(1, 16, 16\)"):
        model.apply(variables, jnp.ones((1, 16, 16)), train=False)
    for empty in [(1, 0, 0, 3), (1, 16, 0, 3), (1, 0, 16)]:  # no pixels: garbage, not logits
        with pytest.raises(ValueError, match=r"ResNet expects images of at least 1 x 1 pixels"):
            variable_shapes(tiny_resnet(), jnp.ones(empty))
    with pytest.raises(ValueError, match="block_cls must be BasicBlock or Bottleneck"):
        ResNet((1,), block_cls=int)
    with pytest.raises(ValueError, match="stage_sizes must be positive ints"):
        ResNet((2, 0), BasicBlock)
    with pytest.raises(ValueError, match="unknown shortcut 'B'; valid shortcuts are projection"):
        BasicBlock(features=4, shortcut="B")


def cifar_param_count(n, shortcut="A"):
    """Count of He et al.'s CIFAR ResNet with n blocks per stage, worked out by hand."""
    convs = 3 * 3 * 3 * 16
    convs += 2 * n * 9 * 16 * 16
    convs += 9 * 16 * 32 + (2 * n - 1) * 9 * 32 * 32
    convs += 9 * 32 * 64 + (2 * n - 1) * 9 * 64 * 64
    bn = 2 * (16 + 2 * n * (16 + 32 + 64))
    fc = 64 * 10 + 10
    projection = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) if shortcut == "B" else 0
    return convs + bn + fc + projection


@pytest.mark.parametrize(
    ("depth", "published_millions"), [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)]
)
def test_cifar_resnet_parameter_counts(depth, published_millions):
    n = (depth - 2) // 6
    count = count_params(variable_shapes(CifarResNet(depth), CIFAR))
    assert count == cifar_param_count(n)
    # He et al. 2016, Table 6, rounds to two significant digits.
    assert float(f"{count / 1e6:.2g}") == published_millions


def test_cifar_resnet_option_b_and_known_counts():
    assert cifar_param_count(3) == 269_722
    b = variable_shapes(CifarResNet(20, shortcut="B"), CIFAR)
    assert count_params(b) == cifar_param_count(3, "B") == 272_474
    assert set(b["params"]["layer2_0"]) >= {"downsample_conv", "downsample_bn"}


def test_cifar_resnet_structure_and_plain_variant():
    model = CifarResNet(depth=20)
    shapes = intermediate_shapes(model, CIFAR)
    assert shapes["layer1_2"] == (1, 32, 32, 16)
    assert shapes["layer2_0"] == (1, 16, 16, 32)
    assert shapes["layer3_2"] == (1, 8, 8, 64)
    assert shapes["fc"] == (1, 10)
    resnet = variable_shapes(model, CIFAR)
    plain = variable_shapes(CifarResNet(depth=20, plain=True), CIFAR)
    assert shapes_of(plain) == shapes_of(resnet)  # same parameter tree: only the skips go
    assert set(resnet["params"]) == {
        "conv1", "bn1", "fc", *(f"layer{s}_{i}" for s in (1, 2, 3) for i in (0, 1, 2)),
    }  # fmt: skip


def test_cifar_resnet_forward_plain_vs_residual_and_bfloat16():
    model = CifarResNet(depth=8, num_outputs=4)
    x = x_of((2, 8, 8, 3))
    variables = random_variables(model, x)
    out = run(model, variables, x, train=False)
    assert out.shape == (2, 4)
    plain = run(model.clone(plain=True), variables, x, train=False)
    assert float(jnp.abs(out - plain).max()) > 1e-3
    out16 = run(model.clone(dtype=jnp.bfloat16), variables, x, train=False)
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(out16.astype(jnp.float32), out, atol=0.15, rtol=0.1)


@pytest.mark.parametrize("depth", [21, 2, 14.0])
def test_cifar_resnet_rejects_depths_not_of_the_form_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2"):
        CifarResNet(depth=depth)


def test_cifar_resnet_other_errors():
    with pytest.raises(ValueError, match="plain CifarResNet has no shortcuts"):
        CifarResNet(plain=True, shortcut="B")
    with pytest.raises(ValueError, match="shortcut must be 'A' or 'B'"):
        CifarResNet(shortcut="C")
    with pytest.raises(ValueError, match=r"CifarResNet expects inputs of shape"):
        variable_shapes(CifarResNet(8), jnp.ones((1, 2, 8, 8, 3)))
