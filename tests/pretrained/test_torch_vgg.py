"""torchvision VGG state dicts -> jdl, and architectures refused by name (no torch needed)."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from jdl import nn, pretrained
from jdl.nn.vgg import VGG_CONFIGS

from .conftest import random_variables

TINY = (4, "M", 6, "M")  # 8 x 8 inputs -> a 2 x 2 x 6 feature map, 24 features


def torch_vgg_state_dict(config=TINY, batch_norm=False, hidden=(5,), classes=3, side=2, seed=0):
    """A torchvision-layout VGG state dict: features.<i> as make_layers numbers them."""
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}
    i, cin = 0, 3
    for entry in config:
        if entry == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"] = rng.normal(0, 0.3, (entry, cin, 3, 3)).astype(np.float32)
        sd[f"features.{i}.bias"] = rng.normal(0, 0.1, entry).astype(np.float32)
        if batch_norm:
            sd[f"features.{i + 1}.weight"] = rng.uniform(0.5, 1.5, entry).astype(np.float32)
            sd[f"features.{i + 1}.bias"] = rng.normal(0, 0.1, entry).astype(np.float32)
            sd[f"features.{i + 1}.running_mean"] = rng.normal(0, 0.2, entry).astype(np.float32)
            sd[f"features.{i + 1}.running_var"] = rng.uniform(0.5, 2, entry).astype(np.float32)
            sd[f"features.{i + 1}.num_batches_tracked"] = np.array(3, np.int64)
        i, cin = i + (3 if batch_norm else 2), entry
    widths = [cin * side * side, *hidden, classes]
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:], strict=False)):
        sd[f"classifier.{3 * k}.weight"] = rng.normal(0, 0.3, (n_out, n_in)).astype(np.float32)
        sd[f"classifier.{3 * k}.bias"] = rng.normal(0, 0.1, n_out).astype(np.float32)
    return sd


def torch_vgg_forward(sd, config, batch_norm, x):
    """torchvision's VGG in numpy, NCHW: conv (pad 1), [BN], ReLU, 2x2 pools, CHW flatten."""
    i = 0
    for entry in config:
        if entry == "M":
            n, c, h, w = x.shape
            x = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
            x, i = x.max(axis=(3, 5)), i + 1
            continue
        k, b = sd[f"features.{i}.weight"], sd[f"features.{i}.bias"]
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        y = np.zeros((x.shape[0], k.shape[0], *x.shape[2:]), np.float64)
        for r in range(x.shape[2]):
            for c in range(x.shape[3]):
                y[:, :, r, c] = np.einsum("nchw,ochw->no", xp[:, :, r : r + 3, c : c + 3], k)
        y += b[None, :, None, None]
        if batch_norm:
            mean, var, gamma, beta = (
                sd[f"features.{i + 1}.{leaf}"][None, :, None, None]
                for leaf in ("running_mean", "running_var", "weight", "bias")
            )
            y = (y - mean) / np.sqrt(var + 1e-5) * gamma + beta
        x, i = np.maximum(y, 0), i + (3 if batch_norm else 2)
    h = x.reshape(x.shape[0], -1)  # channel-major, as torch.flatten on NCHW
    linears = sorted(int(k.split(".")[1]) for k in sd if re.match(r"classifier\.\d+\.weight", k))
    for j in linears:
        h = h @ sd[f"classifier.{j}.weight"].T + sd[f"classifier.{j}.bias"]
        if j != linears[-1]:
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize("batch_norm", [False, True])
def test_logits_match_a_numpy_torchvision_forward(batch_norm):
    sd = torch_vgg_state_dict(batch_norm=batch_norm)
    p = pretrained.from_torchvision(sd)  # the input size is read from classifier.0: 8 x 8
    assert p.model == nn.VGG(TINY, num_outputs=3, batch_norm=batch_norm, classifier=(5,))
    assert p.report.complete
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    out = p.model.apply(p.variables, x.transpose(0, 2, 3, 1), train=False)
    ref = torch_vgg_forward(sd, TINY, batch_norm, x)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-4)


def test_first_classifier_rows_are_permuted_from_chw_to_hwc():
    """Output j of a one-Linear classifier reads feature j of torchvision's CHW flatten only."""
    c, side = 3, 2  # config (3, "M"), 4 x 4 inputs -> a (3, 2, 2) feature map
    eye = np.zeros((c, c, 3, 3), np.float32)
    eye[np.arange(c), np.arange(c), 1, 1] = 1  # each conv channel copies its input channel
    sd = {
        "features.0.weight": eye,
        "features.0.bias": np.zeros(c, np.float32),
        "classifier.0.weight": np.eye(c * side * side, dtype=np.float32),
        "classifier.0.bias": np.zeros(c * side * side, np.float32),
    }
    p = pretrained.from_torchvision(sd)
    assert p.model.config == (3, "M") and p.model.classifier == ()
    x = np.random.default_rng(0).uniform(0, 1, (1, c, 4, 4)).astype(np.float32)  # NCHW
    pooled = x.reshape(1, c, side, 2, side, 2).max(axis=(3, 5))  # (1, C, 2, 2)
    out = np.asarray(p.model.apply(p.variables, x.transpose(0, 2, 3, 1), train=False))
    np.testing.assert_array_equal(out[0], pooled.reshape(-1))  # CHW order, not HWC
    assert not np.array_equal(out[0], pooled.transpose(0, 2, 3, 1).reshape(-1))


VARIANTS = [(name, bn) for name in VGG_CONFIGS for bn in (False, True)]


@pytest.mark.parametrize(("name", "batch_norm"), VARIANTS)
def test_every_vgg_round_trips_through_a_torchvision_state_dict(name, batch_norm):
    """jdl -> torchvision layout -> jdl is the identity, and the architecture is recognised.

    64 x 64 inputs keep it fast and still leave a 2 x 2 map, so the flatten permutation of
    ``fc1`` is not trivial.
    """
    model = nn.VGG(name, num_outputs=3, batch_norm=batch_norm, classifier=(8,))
    variables = random_variables(model, (1, 64, 64, 3))
    sd = pretrained.jdl_vgg_to_torch(variables)
    convs = sum(e != "M" for e in VGG_CONFIGS[name])
    assert len(sd) == 2 * convs + 4 + (4 * convs if batch_norm else 0)
    assert sd["classifier.0.weight"].shape == (8, 512 * 2 * 2)
    assert ("features.1.running_var" in sd) == batch_norm
    assert pretrained.vgg_from_state_dict(sd) == model
    p = pretrained.from_torchvision(sd)  # model and input size (64) read from the weights
    assert p.model == model and p.report.complete
    before, after = pretrained.flatten(variables), pretrained.flatten(p.variables)
    assert set(before) == set(after)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


def test_round_trip_logits_are_identical():
    model = nn.VGG(TINY, num_outputs=3, batch_norm=True, classifier=(5,))
    variables = random_variables(model, (1, 8, 8, 3))
    p = pretrained.from_torchvision(pretrained.jdl_vgg_to_torch(variables))
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype(np.float32)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    np.testing.assert_array_equal(apply(p.variables, x), apply(variables, x))


def test_other_input_sizes_load_non_strict_with_a_new_classifier():
    sd = torch_vgg_state_dict(hidden=(5,), side=2)
    model = nn.VGG(TINY, num_outputs=3, classifier=(5,))  # at 16 x 16: 4 x 4 x 6 = 96 features
    with pytest.raises(pretrained.WeightMismatchError, match=r"params/fc1/kernel: expected"):
        pretrained.from_torchvision(sd, model, input_shape=(1, 16, 16, 3))
    p = pretrained.from_torchvision(sd, model, strict=False, input_shape=(1, 16, 16, 3))
    assert [m[0] for m in p.report.mismatched] == ["params/fc1/kernel"]
    np.testing.assert_array_equal(
        p.variables["params"]["block2_conv1"]["kernel"],
        sd["features.3.weight"].transpose(2, 3, 1, 0),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("gap", "features.1 is 1 after features.0"),
        ("alexnet", "11x11 conv where VGG's are all 3x3 (this looks like AlexNet)"),
        ("nested", "nested modules such as 'features.0.0.weight'"),
        ("classifier", "Linear layers at classifier.[0, 2]"),
        ("timm", "timm's VGG classifier (convolutions), which is not mapped"),
    ],
)
def test_other_layouts_are_refused_with_the_reason(change, message):
    sd = torch_vgg_state_dict()
    if change == "gap":  # a conv right after a conv: no ReLU between them
        sd["features.1.weight"] = sd.pop("features.3.weight")
    elif change == "alexnet":
        sd["features.0.weight"] = np.zeros((4, 3, 11, 11), np.float32)
        sd["classifier.1.weight"] = np.zeros((3, 3), np.float32)
    elif change == "nested":
        sd["features.0.0.weight"] = sd.pop("features.0.weight")
    elif change == "classifier":
        sd["classifier.2.weight"] = sd.pop("classifier.3.weight")
    else:  # timm's vgg16: ConvMlp pre_logits and head.fc instead of classifier.*
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
        sd["pre_logits.fc1.weight"] = np.zeros((5, 6, 2, 2), np.float32)
        sd["head.fc.weight"] = np.zeros((3, 5), np.float32)
    with pytest.raises(pretrained.WeightFileError, match=re.escape(message)) as info:
        pretrained.from_torchvision(sd)
    assert "VGG-11, 13, 16, 19" in str(info.value)


# -- architectures that jdl does not implement, and strict=False -------------------------


def torchvision_bottleneck_shapes(groups=1, width_per_group=64, stages=(3, 4, 6, 3)):
    """Zero arrays shaped as torchvision's ResNet-50 family (resnext50_32x4d, wide_resnet50_2)."""
    sd = {"conv1.weight": (64, 3, 7, 7), "fc.weight": (1000, 2048), "fc.bias": (1000,)}
    bn = lambda name, c: sd.update({f"{name}.{k}": (c,) for k in ("weight", "bias")})  # noqa: E731
    bn("bn1", 64)
    inplanes = 64
    for s, blocks in enumerate(stages):
        planes = 64 * 2**s
        width = planes * width_per_group // 64 * groups
        for b in range(blocks):
            pre = f"layer{s + 1}.{b}"
            sd[f"{pre}.conv1.weight"] = (width, inplanes, 1, 1)
            sd[f"{pre}.conv2.weight"] = (width, width // groups, 3, 3)
            sd[f"{pre}.conv3.weight"] = (planes * 4, width, 1, 1)
            for k, c in ((1, width), (2, width), (3, planes * 4)):
                bn(f"{pre}.bn{k}", c)
            if b == 0:
                sd[f"{pre}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{pre}.downsample.1", planes * 4)
            inplanes = planes * 4
    return {k: np.zeros(v, np.float32) for k, v in sd.items()}


@pytest.mark.parametrize(
    ("groups", "width_per_group", "name"),
    [(32, 4, "ResNeXt (groups=32, width 4)"), (1, 128, "Wide ResNet (width x2)")],
)
def test_resnext_and_wide_resnet_are_named_as_unsupported(groups, width_per_group, name):
    sd = torchvision_bottleneck_shapes(groups, width_per_group)
    assert sd["layer1.0.conv2.weight"].shape[:2] == ((128, 4) if groups > 1 else (128, 128))
    for model in (None, nn.resnet50()):  # with or without a model to load into
        with pytest.raises(pretrained.WeightFileError) as info:
            pretrained.from_torchvision(sd, model)
        text = str(info.value)
        assert name in text and "not implement" in text
        assert "ResNet-18, 34, 50, 101, 152" in text and "VGG-11, 13, 16, 19" in text
    assert pretrained.resnet_from_state_dict(torchvision_bottleneck_shapes()) == nn.resnet50()


def refused(sd, model, **kw):
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.from_torchvision(sd, model, strict=False, **kw)
    return str(info.value)


def test_non_strict_refuses_another_resnet_architecture(state_dict):
    """The tiny BasicBlock ResNet's weights, stages (1, 1), width 4, into other ResNets."""
    shape = dict(input_shape=(1, 32, 32, 3))
    bottleneck = nn.ResNet((1, 1), nn.Bottleneck, num_outputs=3, width=4)
    text = refused(state_dict, bottleneck, **shape)
    assert "ResNet (BasicBlock blocks, stages (1, 1), width 4)" in text
    assert "the model is ResNet (Bottleneck blocks" in text and "another architecture" in text
    assert "only tolerates a different head" in text
    for other in ((1,), (1, 1, 1), (2, 1)):  # fewer blocks (extra weights), more (missing)
        text = refused(state_dict, nn.ResNet(other, num_outputs=3, width=4), **shape)
        assert f"stages {other}" in text and "another architecture" in text
    assert "width 8" in refused(state_dict, nn.ResNet((1, 1), num_outputs=3, width=8), **shape)
    assert "VGG (config (4, 'M', 6, 'M')) without BatchNorm" in refused(
        torch_vgg_state_dict(), nn.ResNet((1, 1), num_outputs=3, width=4), **shape
    )


def test_non_strict_refuses_vgg_of_another_depth_or_batchnorm():
    sd = torch_vgg_state_dict(batch_norm=False)
    text = refused(sd, nn.VGG(TINY, num_outputs=3, classifier=(5,), batch_norm=True))
    assert "without BatchNorm, the model is VGG (config (4, 'M', 6, 'M')) with" in text
    text = refused(sd, nn.VGG((4, 4, "M", 6, "M"), num_outputs=3, classifier=(5,)))
    assert "params/block1_conv2/kernel" in text and "another architecture" in text
    text = refused(sd, nn.resnet18(num_outputs=3), input_shape=(1, 8, 8, 3))
    assert "the model is ResNet-18 (BasicBlock blocks, stages (2, 2, 2, 2), width 64)" in text


def test_non_strict_refuses_missing_weights_inside_the_network(state_dict, tiny_resnet):
    sd = dict(state_dict)
    del sd["layer1.0.conv2.weight"]
    text = refused(sd, tiny_resnet, input_shape=(1, 32, 32, 3))
    assert "differ from it outside the head" in text and "params/layer1_0/conv2/kernel" in text


def test_non_strict_still_takes_another_head_and_bookkeeping(state_dict, tiny_resnet):
    sd = dict(state_dict, **{"fc.weight": np.zeros((10, 8), np.float32)})
    del sd["fc.bias"]
    sd["ema_decay"] = np.array(0.999, np.float32)  # an entry outside the network
    p = pretrained.from_torchvision(sd, tiny_resnet, strict=False, input_shape=(1, 32, 32, 3))
    assert p.report.missing == ["params/fc/bias"] and p.report.unexpected == ["ema_decay"]
    assert [m[0] for m in p.report.mismatched] == ["params/fc/kernel"]
    vgg = torch_vgg_state_dict(classes=7)
    p = pretrained.from_torchvision(vgg, nn.VGG(TINY, num_outputs=3, classifier=(5,)), strict=False)
    assert [m[0] for m in p.report.mismatched] == ["params/head/bias", "params/head/kernel"]


def test_strict_error_names_both_architectures(state_dict):
    model = nn.ResNet((1, 1), nn.Bottleneck, num_outputs=3, width=4)
    with pytest.raises(pretrained.WeightMismatchError, match="another architecture") as info:
        pretrained.from_torchvision(state_dict, model, input_shape=(1, 32, 32, 3))
    assert info.value.missing  # the lists are still all there
