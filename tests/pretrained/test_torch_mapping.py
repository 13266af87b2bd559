"""torchvision/timm ResNet state dicts -> jdl, checked on hand-made state dicts (no torch)."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from jdl import nn, pretrained
from jdl.pretrained import _files

from .conftest import torch_state_dict


def test_layouts_are_converted_explicitly(state_dict, tiny_resnet):
    p = pretrained.from_torchvision(state_dict, tiny_resnet, input_shape=(1, 32, 32, 3))
    params, stats = p.variables["params"], p.variables["batch_stats"]
    w = state_dict["layer2.0.conv1.weight"]  # (O, I, kH, kW)
    k = np.asarray(params["layer2_0"]["conv1"]["kernel"])  # (kH, kW, I, O)
    assert k.shape == (3, 3, 4, 8)
    assert k[2, 0, 3, 5] == w[5, 3, 2, 0]
    np.testing.assert_array_equal(params["fc"]["kernel"], state_dict["fc.weight"].T)
    np.testing.assert_array_equal(params["fc"]["bias"], state_dict["fc.bias"])
    ds = state_dict["layer2.0.downsample.0.weight"]
    np.testing.assert_array_equal(
        params["layer2_0"]["downsample_conv"]["kernel"][0, 0], ds[:, :, 0, 0].T
    )
    np.testing.assert_array_equal(params["bn1"]["scale"], state_dict["bn1.weight"])
    np.testing.assert_array_equal(params["bn1"]["bias"], state_dict["bn1.bias"])
    np.testing.assert_array_equal(
        stats["layer2_0"]["downsample_bn"]["mean"], state_dict["layer2.0.downsample.1.running_mean"]
    )
    np.testing.assert_array_equal(
        stats["layer1_0"]["bn2"]["var"], state_dict["layer1.0.bn2.running_var"]
    )
    # 6 convs + 6 BatchNorms x 4 + fc kernel and bias; the 6 counters are dropped
    assert p.report.complete and len(p.report.loaded) == 6 + 6 * 4 + 2 == len(state_dict) - 6
    assert p.info["mean"] == (0.485, 0.456, 0.406)


def test_stem_conv_matches_a_numpy_reference(state_dict, tiny_resnet):
    """The converted conv1 computes PyTorch's cross-correlation with symmetric padding 3."""
    p = pretrained.from_torchvision(state_dict, tiny_resnet, input_shape=(1, 32, 32, 3))
    x = np.random.default_rng(1).normal(size=(1, 3, 9, 9)).astype(np.float32)  # NCHW
    w = state_dict["conv1.weight"]
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    ref = np.zeros((1, 4, 5, 5), np.float32)  # floor((9 + 6 - 7) / 2) + 1 = 5
    for i in range(5):
        for j in range(5):
            patch = xp[:, :, 2 * i : 2 * i + 7, 2 * j : 2 * j + 7]
            ref[0, :, i, j] = np.einsum("nchw,ochw->no", patch, w)[0]
    conv = jax.jit(
        lambda v, x: nn.ResNet(stage_sizes=(1, 1), num_outputs=3, width=4).apply(
            v,
            x,
            train=False,
            capture_intermediates=lambda m, _: m.name == "conv1" and m.path == ("conv1",),
            mutable=["intermediates"],
        )[1]["intermediates"]["conv1"]["__call__"][0]
    )(p.variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(conv).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-4)


def test_architecture_is_inferred_from_the_state_dict(state_dict):
    model = pretrained.resnet_from_state_dict(state_dict)
    assert model.stage_sizes == (1, 1) and model.width == 4 and model.num_outputs == 3
    assert model.block_cls is nn.BasicBlock
    bottleneck = {"conv1.weight": np.zeros((64, 3, 7, 7)), "fc.weight": np.zeros((10, 2048))}
    for s, n in enumerate((3, 4, 6, 3), start=1):
        for i in range(n):
            bottleneck[f"layer{s}.{i}.conv3.weight"] = np.zeros(1)
    m50 = pretrained.resnet_from_state_dict(bottleneck)
    assert m50.stage_sizes == (3, 4, 6, 3) and m50.block_cls is nn.Bottleneck
    with pytest.raises(pretrained.WeightFileError, match="not a torchvision/timm ResNet"):
        pretrained.resnet_from_state_dict({"encoder.weight": np.zeros(3)})


def test_safetensors_file_round_trip_and_output(state_dict, tmp_path):
    path = tmp_path / "model.safetensors"  # timm's hub layout
    save_file(state_dict, str(path))
    p = pretrained.from_timm(path, input_shape=(1, 32, 32, 3))
    assert pretrained.load(path, input_shape=(1, 32, 32, 3)).model == p.model
    back = pretrained.jdl_resnet_to_torch(p.variables)
    assert set(back) == {k for k in state_dict if not k.endswith("num_batches_tracked")}
    for k, v in back.items():
        np.testing.assert_array_equal(v, state_dict[k])
    out = p.model.apply(p.variables, np.ones((2, 32, 32, 3), np.float32), train=False)
    assert out.shape == (2, 3) and np.all(np.isfinite(out))


def test_strict_lists_every_problem_in_one_error(state_dict, tiny_resnet):
    sd = dict(state_dict)
    del sd["layer1.0.bn1.running_var"]  # missing
    sd["head.weight"] = np.zeros((3, 8), np.float32)  # unexpected
    sd["fc.weight"] = np.zeros((5, 8), np.float32)  # shape mismatch
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.from_torchvision(sd, tiny_resnet, input_shape=(1, 32, 32, 3))
    err = info.value
    assert err.missing == ["batch_stats/layer1_0/bn1/var"]
    assert err.unexpected == ["head.weight"]
    assert err.mismatched == [("params/fc/kernel", (8, 3), (8, 5))]
    text = str(err)
    assert "missing" in text and "unexpected" in text and "expected (8, 3), found (8, 5)" in text


def test_non_strict_loads_what_fits_and_reports(state_dict, tiny_resnet):
    sd = dict(state_dict)
    sd["fc.weight"] = np.zeros((10, 8), np.float32)
    sd["fc.bias"] = np.zeros(10, np.float32)
    p = pretrained.from_torchvision(sd, tiny_resnet, strict=False, input_shape=(1, 32, 32, 3))
    assert [m[0] for m in p.report.mismatched] == ["params/fc/bias", "params/fc/kernel"]
    assert not p.report.complete and "params/conv1/kernel" in p.report.loaded
    assert p.variables["params"]["fc"]["kernel"].shape == (8, 3)  # freshly initialised
    assert not np.all(np.asarray(p.variables["params"]["fc"]["kernel"]) == 0)
    np.testing.assert_array_equal(
        p.variables["params"]["conv1"]["kernel"], state_dict["conv1.weight"].transpose(2, 3, 1, 0)
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors_gives_a_clear_error(state_dict, tmp_path, damage):
    path = tmp_path / "model.safetensors"
    save_file(state_dict, str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"\x00" * 100)
    with pytest.raises(pretrained.WeightFileError, match="not a readable safetensors file"):
        pretrained.from_torchvision(path)


class _WritesAFile:
    """Unpickling this would create a file: proof of code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_pth_is_refused_without_torch(tmp_path, monkeypatch):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _WritesAFile(str(marker))}, f)
    monkeypatch.setattr(_files, "torch_available", lambda: False)
    with pytest.raises(pretrained.WeightFileError, match="safetensors") as info:
        pretrained.load(path)
    assert "weights_only=True" in str(info.value)
    assert not marker.exists()


def test_pickle_pth_with_torch_goes_through_weights_only(tmp_path):
    pytest.importorskip("torch")
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _WritesAFile(str(marker))}, f)
    with pytest.raises(pretrained.WeightFileError, match="weights_only"):
        pretrained.from_torchvision(path)
    assert not marker.exists()


def test_unknown_extension_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"PK")
    with pytest.raises(pretrained.WeightFileError, match="format"):
        pretrained.load(path)


def test_bfloat16_tensors_are_widened(state_dict, tmp_path):
    import ml_dtypes

    sd = {
        k: (v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v)
        for k, v in state_dict.items()
    }
    path = tmp_path / "bf16.safetensors"
    save_file(sd, str(path))
    p = pretrained.from_torchvision(path, input_shape=(1, 32, 32, 3))
    assert p.variables["params"]["fc"]["kernel"].dtype == jnp.float32
    np.testing.assert_allclose(
        p.variables["params"]["fc"]["kernel"], state_dict["fc.weight"].T, rtol=1e-2
    )


def test_second_state_dict_differs(tiny_resnet):
    """Guard against a mapping that ignores its input."""
    a = pretrained.from_torchvision(torch_state_dict(0), tiny_resnet, input_shape=(1, 32, 32, 3))
    b = pretrained.from_torchvision(torch_state_dict(1), tiny_resnet, input_shape=(1, 32, 32, 3))
    x = np.ones((1, 32, 32, 3), np.float32)
    assert not np.allclose(
        a.model.apply(a.variables, x, train=False), b.model.apply(b.variables, x, train=False)
    )
