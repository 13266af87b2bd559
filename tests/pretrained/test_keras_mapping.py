"""Keras VGG weight files -> jdl, on small h5 files written with h5py in Keras' layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jdl import nn, pretrained

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
    from jdl.pretrained.keras import _positional

    convs, _, _ = _positional(read)
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


def test_keras_resnet50_files_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "resnet50.h5"
    conv = [("kernel", np.zeros((7, 7, 3, 64), np.float32)), ("bias", np.zeros(64, np.float32))]
    write_legacy(path, [("conv1_conv", conv), ("predictions", keras_layers()[-1][1])])
    with pytest.raises(pretrained.WeightFileError, match="ResNet v1"):
        pretrained.load(path)
