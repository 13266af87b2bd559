"""Keras VGG / ResNet weight files -> jdl, on small h5 files written with h5py in Keras' layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jdl import nn, pretrained
from jdl.pretrained._keras_h5 import layer_kind

CONFIG = (4, "M", 8, "M")  # two blocks: 8x8 inputs -> 2x2x8 = 32 features


def tiny_vgg(**kw):
    return nn.VGG(config=CONFIG, classifier=(16,), num_outputs=3, dropout=0.0, **kw)


def keras_layers(seed=0):
    """``[(layer_name, [(weight_name, array), ...]), ...]`` as Keras names VGG16's layers."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return [
        ("input_1", []),
        ("block1_conv1", [("kernel", w(3, 3, 3, 4)), ("bias", w(4))]),
        ("block1_pool", []),
        ("block2_conv1", [("kernel", w(3, 3, 4, 8)), ("bias", w(8))]),
        ("block2_pool", []),
        ("flatten", []),
        ("fc1", [("kernel", w(32, 16)), ("bias", w(16))]),
        ("predictions", [("kernel", w(16, 3)), ("bias", w(3))]),
    ]


def write_legacy(path, layers, *, whole_model=False):
    """Keras 2 / applications layout: layer_names, weight_names, nested datasets."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, weights in layers:
            g = root.create_group(name)
            g.attrs["weight_names"] = [f"{name}/{wn}:0".encode() for wn, _ in weights]
            for wn, a in weights:
                g.create_dataset(f"{name}/{wn}:0", data=a)


def write_keras3(path, layers):
    """Keras 3 ``.weights.h5``: layers named by type, ``vars/0``, ``vars/1``."""
    counts: dict[str, int] = {}
    with h5py.File(path, "w") as f:
        top = f.create_group("layers")
        for name, weights in layers:
            kind = "conv2d" if "conv" in name else "dense" if weights else "max_pooling2d"
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            g = top.create_group(kind if n == 0 else f"{kind}_{n}").create_group("vars")
            for i, (_, a) in enumerate(weights):
                g.create_dataset(str(i), data=a)


def numpy_vgg(layers, x):
    """Keras' VGG forward pass in numpy: 'same' 3x3 convs, ReLU, 2x2 pools, HWC flatten."""
    w = dict(layers)
    for conv in ("block1_conv1", "block2_conv1"):
        k, b = (a for _, a in w[conv])
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        h, wd = x.shape[1:3]
        y = np.zeros((x.shape[0], h, wd, k.shape[-1]), np.float32)
        for i in range(h):
            for j in range(wd):
                y[:, i, j] = np.einsum("nhwc,hwco->no", xp[:, i : i + 3, j : j + 3], k)
        x = np.maximum(y + b, 0)
        x = x.reshape(x.shape[0], h // 2, 2, wd // 2, 2, -1).max(axis=(2, 4))
    x = x.reshape(x.shape[0], -1)
    k, b = (a for _, a in w["fc1"])
    x = np.maximum(x @ k + b, 0)
    k, b = (a for _, a in w["predictions"])
    return x @ k + b


@pytest.mark.parametrize("layout", ["legacy", "whole_model", "keras3"])
def test_vgg_weights_load_and_compute_like_keras(tmp_path, layout):
    layers = keras_layers()
    path = tmp_path / ("w.weights.h5" if layout == "keras3" else "w.h5")
    if layout == "keras3":
        write_keras3(path, layers)
    else:
        write_legacy(path, layers, whole_model=layout == "whole_model")
    model = None if layout != "keras3" else tiny_vgg()  # Keras 3 names carry no structure
    p = pretrained.from_keras(path, model, input_shape=(1, 8, 8, 3))
    assert p.model == tiny_vgg() and p.report.complete
    w = dict(layers)
    np.testing.assert_array_equal(
        p.variables["params"]["block2_conv1"]["kernel"], w["block2_conv1"][0][1]
    )
    np.testing.assert_array_equal(p.variables["params"]["head"]["bias"], w["predictions"][1][1])
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    out = np.asarray(p.model.apply(p.variables, x, train=False))
    np.testing.assert_allclose(out, numpy_vgg(layers, x), rtol=1e-4, atol=1e-4)
    assert p.info["channel_order"] == "BGR"


def test_keras3_file_of_an_unknown_vgg_needs_a_model(tmp_path):
    path = tmp_path / "w.weights.h5"
    write_keras3(path, keras_layers())
    with pytest.raises(pretrained.WeightFileError, match="match no VGG configuration"):
        pretrained.from_keras(path)


def test_read_keras_weights_orders_keras3_layers_numerically(tmp_path):
    path = tmp_path / "w.weights.h5"
    layers = [
        (
            f"block1_conv{i}",
            [("kernel", np.full((3, 3, 1, 1), i, np.float32)), ("bias", np.zeros(1, np.float32))],
        )
        for i in range(12)
    ]
    write_keras3(path, layers)
    read = pretrained.read_keras_weights(path)
    from jdl.pretrained.keras_vgg import _positional

    convs, _ = _positional(read)
    assert [float(read[c][0][1][0, 0, 0, 0]) for c in convs] == list(range(12))  # conv2d_10 last


def test_notop_file_loads_non_strict_with_a_report(tmp_path):
    layers = [(n, w) for n, w in keras_layers() if n not in ("fc1", "predictions")]
    path = tmp_path / "notop.h5"
    write_legacy(path, layers)
    with pytest.raises(pretrained.WeightMismatchError, match="params/fc1/kernel"):
        pretrained.from_keras(path, tiny_vgg(), input_shape=(1, 8, 8, 3))
    p = pretrained.from_keras(path, tiny_vgg(), strict=False, input_shape=(1, 8, 8, 3))
    assert sorted(p.report.missing) == [
        "params/fc1/bias",
        "params/fc1/kernel",
        "params/head/bias",
        "params/head/kernel",
    ]
    assert len(p.report.loaded) == 4


def test_wrong_input_size_is_a_shape_mismatch(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy(path, keras_layers())
    with pytest.raises(
        pretrained.WeightMismatchError, match=r"params/fc1/kernel: expected \(128, 16\)"
    ):
        pretrained.from_keras(path, input_shape=(1, 16, 16, 3))


def test_truncated_or_foreign_h5_gives_a_clear_error(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy(path, keras_layers())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(pretrained.WeightFileError, match="not a readable HDF5"):
        pretrained.from_keras(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(pretrained.WeightFileError, match="not Keras weights"):
        pretrained.load(other)


# --- ResNet (v1, Keras' ResNet50 layout) ---------------------------------------------------

EPS = 1.001e-5
STAGES, WIDTH, CLASSES = (1, 2), 4, 3  # conv2_block1, conv3_block1, conv3_block2


def tiny_keras_resnet(**kw):
    settings = dict(num_outputs=CLASSES, width=WIDTH, stride_in_1x1=True, bn_epsilon=EPS)
    return nn.ResNet(STAGES, nn.Bottleneck, **{**settings, **kw})


def keras_resnet_layers(stages=STAGES, width=WIDTH, classes=CLASSES, seed=0, shapes_only=False):
    """A Keras ResNet's layers as Keras lists them (``model.layers`` order), random weights.

    Downsampling blocks come as ``_1``, ``_2``, ``_0``, ``_3`` (conv before BN within each),
    which is the order of Keras' functional graph (checked against Keras in the interop test).
    ``shapes_only``: zero-memory broadcast zeros instead (for full-size ResNet50 layouts).
    """
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    positive = lambda c: rng.uniform(0.5, 1.5, c).astype(np.float32)  # noqa: E731
    if shapes_only:
        w = positive = lambda *s: np.broadcast_to(np.float32(0), s)  # noqa: E731
    layers = [("input_layer", []), ("conv1_pad", [])]

    def conv(name, k, cin, cout):
        layers.append((f"{name}_conv", [("kernel", w(k, k, cin, cout)), ("bias", w(cout))]))

    def bn(name, c):
        stats = [("gamma", positive(c)), ("beta", w(c)), ("moving_mean", w(c))]
        layers.append((f"{name}_bn", [*stats, ("moving_variance", positive(c) + 0.5)]))

    conv("conv1", 7, 3, width)
    bn("conv1", width)
    layers += [("conv1_relu", []), ("pool1_pad", []), ("pool1_pool", [])]
    cin = width
    for s, n in enumerate(stages):
        f = width * 2**s
        for i in range(n):
            p = f"conv{s + 2}_block{i + 1}"
            conv(f"{p}_1", 1, cin, f)
            bn(f"{p}_1", f)
            conv(f"{p}_2", 3, f, f)
            bn(f"{p}_2", f)
            if i == 0:
                conv(f"{p}_0", 1, cin, 4 * f)
            conv(f"{p}_3", 1, f, 4 * f)
            if i == 0:
                bn(f"{p}_0", 4 * f)
            bn(f"{p}_3", 4 * f)
            layers += [(f"{p}_add", []), (f"{p}_out", [])]
            cin = 4 * f
    layers.append(("avg_pool", []))
    layers.append(("predictions", [("kernel", w(cin, classes)), ("bias", w(classes))]))
    return layers


def write_keras3_resnet(path, layers, *, names=True):
    """Keras 3 ``.weights.h5``: groups named by type and position; optionally the layer name."""
    counts: dict[str, int] = {}
    with h5py.File(path, "w") as f:
        top = f.create_group("layers")
        for name, weights in layers:
            kind = (
                "conv2d"
                if name.endswith("_conv")
                else "batch_normalization"
                if name.endswith("_bn")
                else "dense"
                if weights
                else "activation"
            )
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            g = top.create_group(kind if n == 0 else f"{kind}_{n}").create_group("vars")
            if names:
                g.attrs["name"] = name
            for i, (_, a) in enumerate(weights):
                g.create_dataset(str(i), data=a)


def keras_resnet_forward(layers, x, stages=STAGES):
    """Keras' ResNet v1 graph with lax: biased convs, BN(eps 1.001e-5), zero-padded max-pool."""
    import jax
    import jax.numpy as jnp

    w = {n: dict(ws) for n, ws in layers if ws}

    def conv(name, x, stride=1, pad=0):
        k = w[f"{name}_conv"]
        y = jax.lax.conv_general_dilated(
            x,
            k["kernel"],
            (stride, stride),
            [(pad, pad), (pad, pad)],
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + k["bias"]

    def bn(name, x):
        b = w[f"{name}_bn"]
        inv = b["gamma"] / np.sqrt(b["moving_variance"] + np.float32(EPS))
        return (x - b["moving_mean"]) * inv + b["beta"]

    x = jnp.pad(jnp.asarray(x), ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = jax.nn.relu(bn("conv1", conv("conv1", x, stride=2)))
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros, as ZeroPadding2D
    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    for s, n in enumerate(stages):
        for i in range(n):
            p = f"conv{s + 2}_block{i + 1}"
            stride = 2 if s > 0 and i == 0 else 1
            short = bn(f"{p}_0", conv(f"{p}_0", x, stride)) if i == 0 else x
            y = jax.nn.relu(bn(f"{p}_1", conv(f"{p}_1", x, stride)))
            y = jax.nn.relu(bn(f"{p}_2", conv(f"{p}_2", y, pad=1)))
            y = bn(f"{p}_3", conv(f"{p}_3", y))
            x = jax.nn.relu(short + y)
    x = x.mean(axis=(1, 2))
    return np.asarray(x @ w["predictions"]["kernel"] + w["predictions"]["bias"])


def write_resnet(path, layers, layout):
    if layout.startswith("keras3"):
        write_keras3_resnet(path, layers, names=layout == "keras3_named")
    else:
        write_legacy(path, layers, whole_model=layout == "whole_model")


@pytest.mark.parametrize("layout", ["legacy", "whole_model", "keras3_named", "keras3_positional"])
def test_resnet_weights_load_and_compute_like_keras(tmp_path, layout):
    layers = keras_resnet_layers()
    path = tmp_path / ("w.weights.h5" if layout.startswith("keras3") else "w.h5")
    write_resnet(path, layers, layout)
    p = pretrained.from_keras(path)
    assert p.model == tiny_keras_resnet() and p.report.complete
    assert p.info["channel_order"] == "BGR"
    w = {n: dict(ws) for n, ws in layers if ws}
    v = p.variables
    np.testing.assert_array_equal(
        v["params"]["layer2_0"]["downsample_conv"]["kernel"], w["conv3_block1_0_conv"]["kernel"]
    )
    np.testing.assert_array_equal(
        v["params"]["layer1_0"]["conv3"]["kernel"], w["conv2_block1_3_conv"]["kernel"]
    )
    np.testing.assert_array_equal(v["params"]["fc"]["kernel"], w["predictions"]["kernel"])
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    out = np.asarray(p.model.apply(p.variables, x, train=False))
    ref = keras_resnet_forward(layers, x)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    # The same weights in a v1.5 model compute something else: the stride placement matters.
    v15 = tiny_keras_resnet(stride_in_1x1=False)
    assert np.abs(np.asarray(v15.apply(p.variables, x, train=False)) - ref).max() > 1e-2


def test_resnet_names_and_batchnorm_leaves_map_to_jdl_paths():
    layers = dict(keras_resnet_layers())
    flat, unmapped = pretrained.keras_resnet._keras_resnet_to_jdl(layers, tiny_keras_resnet())
    assert unmapped == []
    bn = dict(layers["conv3_block2_3_bn"])
    np.testing.assert_array_equal(flat["params/layer2_1/bn3/scale"], bn["gamma"])
    np.testing.assert_array_equal(flat["params/layer2_1/bn3/bias"], bn["beta"])
    np.testing.assert_array_equal(flat["batch_stats/layer2_1/bn3/var"], bn["moving_variance"])
    assert flat["params/layer2_0/downsample_conv/kernel"].shape == (1, 1, 16, 32)
    assert flat["params/conv1/kernel"].shape == (7, 7, 3, 4)
    assert "params/bn1/scale" in flat and "params/fc/bias" in flat
    assert not any(k.endswith("conv1/bias") or "_conv/bias" in k for k in flat)  # no conv bias


def test_conv_bias_is_folded_into_the_following_batchnorm_mean():
    import flax.linen as fnn

    layers = dict(keras_resnet_layers())
    flat, _ = pretrained.keras_resnet._keras_resnet_to_jdl(layers, tiny_keras_resnet())
    for keras_name, jdl_bn in [
        ("conv1", "bn1"),
        ("conv2_block1_2", "layer1_0/bn2"),
        ("conv3_block1_0", "layer2_0/downsample_bn"),
    ]:
        bias = dict(layers[f"{keras_name}_conv"])["bias"]
        stats = dict(layers[f"{keras_name}_bn"])
        folded = flat[f"batch_stats/{jdl_bn}/mean"]
        np.testing.assert_allclose(folded, stats["moving_mean"] - bias, rtol=0, atol=1e-6)
        # BN(z + b) with the file's statistics == BN(z) with the folded mean.
        z = np.random.default_rng(2).normal(size=(5, bias.size)).astype(np.float32)
        norm = fnn.BatchNorm(use_running_average=True, epsilon=EPS)
        params = {"scale": stats["gamma"], "bias": stats["beta"]}
        keras_out = norm.apply(
            {
                "params": params,
                "batch_stats": {"mean": stats["moving_mean"], "var": stats["moving_variance"]},
            },
            z + bias,
        )
        jdl_out = norm.apply(
            {"params": params, "batch_stats": {"mean": folded, "var": stats["moving_variance"]}},
            z,
        )
        np.testing.assert_allclose(jdl_out, keras_out, rtol=1e-5, atol=1e-5)


def test_resnet_file_mismatches_are_listed_together_and_non_strict_loads_the_rest(tmp_path):
    layers = [(n, w) for n, w in keras_resnet_layers() if n != "conv3_block2_3_bn"]
    layers.append(("extra_dense", [("kernel", np.zeros((2, 2), np.float32))]))
    path = tmp_path / "w.h5"
    write_legacy(path, layers)
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.from_keras(path)
    err = info.value
    assert "params/layer2_1/bn3/scale" in err.missing
    assert "batch_stats/layer2_1/bn3/mean" in err.missing
    assert "extra_dense/kernel" in err.unexpected
    assert any(u.startswith("conv3_block2_3_conv/bias (no BatchNorm") for u in err.unexpected)
    p = pretrained.from_keras(path, strict=False)
    assert len(p.report.missing) == 4 and len(p.report.unexpected) == 2
    assert "params/layer2_1/conv3/kernel" in p.report.loaded


def test_resnet_shape_mismatch_and_notop_files(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy(path, keras_resnet_layers())
    wider = tiny_keras_resnet().clone(width=8)
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.from_keras(path, wider)
    assert ("params/conv1/kernel", (7, 7, 3, 8), (7, 7, 3, 4)) in info.value.mismatched
    notop = tmp_path / "notop.h5"
    write_legacy(notop, [(n, w) for n, w in keras_resnet_layers() if n != "predictions"])
    p = pretrained.from_keras(notop, tiny_keras_resnet(), strict=False)
    assert p.report.missing == ["params/fc/bias", "params/fc/kernel"]


def test_keras3_positional_file_loads_into_a_given_model(tmp_path):
    layers = keras_resnet_layers(stages=(2,), width=2, classes=5)
    path = tmp_path / "w.weights.h5"
    write_keras3_resnet(path, layers, names=False)
    model = nn.ResNet((2,), nn.Bottleneck, num_outputs=5, width=2, stride_in_1x1=True)
    p = pretrained.from_keras(path, model, input_shape=(1, 16, 16, 3))
    assert p.model is model and p.report.complete
    w = {n: dict(ws) for n, ws in layers if ws}
    np.testing.assert_array_equal(
        p.variables["params"]["layer1_0"]["downsample_conv"]["kernel"],
        w["conv2_block1_0_conv"]["kernel"],
    )
    np.testing.assert_array_equal(
        p.variables["params"]["layer1_1"]["bn2"]["scale"], w["conv2_block2_2_bn"]["gamma"]
    )
    assert pretrained.keras_resnet._resnet_from_keras_weights(
        pretrained.read_keras_weights(path)
    ) == (
        nn.ResNet((2,), nn.Bottleneck, num_outputs=5, width=2, stride_in_1x1=True, bn_epsilon=EPS)
    )


def test_full_resnet50_layers_map_onto_jdl_resnet50_exactly(tmp_path):
    from jdl.pretrained._tree import expected_shapes

    layers = dict(keras_resnet_layers((3, 4, 6, 3), 64, 1000, shapes_only=True))
    model = pretrained.keras_resnet._resnet_from_keras_weights(layers)
    assert model == nn.resnet50(stride_in_1x1=True, bn_epsilon=EPS)
    flat, unmapped = pretrained.keras_resnet._keras_resnet_to_jdl(layers, model)
    wanted = expected_shapes(model, (1, 224, 224, 3))
    assert unmapped == [] and sorted(flat) == sorted(wanted)
    assert all(tuple(flat[k].shape) == tuple(wanted[k].shape) for k in flat)
    # Keras 3 files without layer names: same model from the conv shapes alone.
    positional = {}
    counts: dict[str, int] = {}
    for weights in layers.values():
        kind = layer_kind(weights) if weights else None
        if kind:
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            positional[kind if n == 0 else f"{kind}_{n}"] = weights
    assert pretrained.keras_resnet._resnet_from_keras_weights(positional) == model


def test_loading_into_a_v15_resnet_warns_and_other_models_are_refused(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy(path, keras_resnet_layers())
    with pytest.warns(UserWarning, match="stride_in_1x1=False"):
        p = pretrained.from_keras(path, tiny_keras_resnet(stride_in_1x1=False))
    assert p.report.complete
    basic = nn.ResNet(STAGES, nn.BasicBlock, num_outputs=CLASSES, width=WIDTH)
    with pytest.raises(ValueError, match="block_cls=Bottleneck"):
        pretrained.from_keras(path, basic)


def test_keras_resnet_v2_files_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "resnet50v2.h5"
    conv = [("kernel", np.zeros((7, 7, 3, 64), np.float32)), ("bias", np.zeros(64, np.float32))]
    bn = [(n, np.ones(64, np.float32)) for n in ("gamma", "beta", "moving_mean", "moving_variance")]
    write_legacy(path, [("conv1_conv", conv), ("conv2_block1_preact_bn", bn), ("post_bn", bn)])
    with pytest.raises(pretrained.WeightFileError, match="pre-activation"):
        pretrained.load(path)


def test_unnamed_file_of_no_known_resnet_needs_a_model(tmp_path):
    path = tmp_path / "w.weights.h5"
    layers = [(n, w) for n, w in keras_resnet_layers() if n != "conv3_block2_2_conv"]
    write_keras3_resnet(path, layers, names=False)
    with pytest.raises(pretrained.WeightFileError, match="pass model="):
        pretrained.from_keras(path)


def test_keras_resnet_converted_once_round_trips_through_the_jdl_format(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy(path, keras_resnet_layers())
    p = pretrained.from_keras(path)
    saved = pretrained.save(tmp_path / "r.safetensors", p.model, p.variables)
    back = pretrained.load_jdl(saved)
    assert back.model == p.model and back.model.stride_in_1x1 and back.model.bn_epsilon == EPS
    x = np.random.default_rng(3).normal(size=(1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        back.model.apply(back.variables, x, train=False), p.model.apply(p.variables, x, train=False)
    )


def test_keras_resnet50_hub_entry():
    from jdl.pretrained import hub

    e = hub.REGISTRY["resnet50.keras_in1k"]
    assert e.format == "keras" and e.md5 == "2cb95161c43110f7111970584f804107"
    assert e.url == (
        "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    )
    assert e.cache_name == "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    assert e.info["channel_order"] == "BGR" and e.info["std"] == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(e.info["mean"], (103.939, 116.779, 123.68))


def mobilenet_v2_layers(seed=0):
    """The first layers of Keras' MobileNetV2 (``keras.applications.MobileNetV2``), in order."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    bn = lambda c: [(n, w(c)) for n in ("gamma", "beta", "moving_mean", "moving_variance")]  # noqa: E731
    return [
        ("input_1", []),
        ("Conv1", [("kernel", w(3, 3, 3, 32))]),
        ("bn_Conv1", bn(32)),
        ("Conv1_relu", []),
        ("expanded_conv_depthwise", [("depthwise_kernel", w(3, 3, 32, 1))]),
        ("expanded_conv_depthwise_BN", bn(32)),
        ("expanded_conv_project", [("kernel", w(1, 1, 32, 16))]),
        ("expanded_conv_project_BN", bn(16)),
        ("block_1_expand", [("kernel", w(1, 1, 16, 96))]),
        ("block_1_expand_BN", bn(96)),
        ("block_1_depthwise", [("depthwise_kernel", w(3, 3, 96, 1))]),
        ("block_1_depthwise_BN", bn(96)),
        ("block_1_project", [("kernel", w(1, 1, 96, 24))]),
        ("block_1_project_BN", bn(24)),
        ("Conv_1", [("kernel", w(1, 1, 24, 1280))]),
        ("Conv_1_bn", bn(1280)),
        ("global_average_pooling2d", []),
        ("predictions", [("kernel", w(1280, 10)), ("bias", w(10))]),
    ]


def test_mobilenet_v2_file_is_refused_as_mobilenet_v2(tmp_path):
    path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    write_legacy(path, mobilenet_v2_layers())
    for model in (None, tiny_vgg()):  # also when a model to load into is given
        with pytest.raises(pretrained.WeightFileError) as info:
            pretrained.from_keras(path, model)
        text = str(info.value)
        assert "Keras MobileNetV2 weights" in text and "bn_Conv1" in text
        assert "Supported: Keras applications VGG16, VGG19, ResNet50, ResNet101" in text
        assert "no names" not in text


def test_keras3_file_with_depthwise_convolutions_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:  # Keras 3 without recorded names: groups named by type
        layers = f.create_group("layers")
        for group, shapes in (
            ("conv2d", [(3, 3, 3, 8)]),
            ("batch_normalization", [(8,)] * 4),
            ("depthwise_conv2d", [(3, 3, 8, 1)]),
            ("dense", [(8, 3), (3,)]),
        ):
            g = layers.create_group(group).create_group("vars")
            for i, s in enumerate(shapes):
                g.create_dataset(str(i), data=np.ones(s, np.float32))
    with pytest.raises(pretrained.WeightFileError, match="depthwise convolutions") as info:
        pretrained.from_keras(path)
    assert "Supported: Keras applications" in str(info.value)


def test_named_layers_of_no_known_architecture_are_refused_as_such(tmp_path):
    path = tmp_path / "mine.h5"
    bn = [(n, np.ones(4, np.float32)) for n in ("gamma", "beta", "moving_mean", "moving_variance")]
    write_legacy(path, [("stem", [("kernel", np.ones((3, 3, 3, 4), np.float32))]), ("stem_bn", bn)])
    with pytest.raises(pretrained.WeightFileError, match="of no supported architecture") as info:
        pretrained.from_keras(path)
    assert "stem, stem_bn" in str(info.value) and "no names" not in str(info.value)
