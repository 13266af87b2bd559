"""pretrained.load builds a checkpoint's model by its arch; num_outputs swaps the head."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.numpy import save_file

from jdl import nn, pretrained
from jdl.nn import registry
from jdl.pretrained import hub

from .conftest import random_variables, torch_state_dict


@pytest.fixture
def mlp_file(tmp_path):
    """The MNIST-1D MLP (10 classes) saved in jdl's format, and its SHA-256."""
    model = nn.get_model("mnist1d_mlp")
    variables = random_variables(model, (1, 40))
    path = tmp_path / "src" / "mlp.safetensors"
    pretrained.save(path, model, variables, input_shape=(1, 40))
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), variables


def register(monkeypatch, path, digest, **kw):
    e = hub.HubEntry(name="test-arch", url=path.as_uri(), sha256=digest, **kw)
    monkeypatch.setitem(hub.REGISTRY, e.name, e)
    return e


def test_load_builds_the_entry_arch_by_name(mlp_file, monkeypatch, tmp_path):
    path, digest, variables = mlp_file
    register(
        monkeypatch, path, digest, format="jdl", num_classes=10, arch="mnist1d_mlp",
        arch_overrides={"dropout": 0.25},
    )  # fmt: skip
    p = pretrained.load("test-arch", cache_dir=tmp_path / "cache")
    # The file records dropout 0; the model comes from the registry name and overrides.
    assert p.model == nn.get_model("mnist1d_mlp", dropout=0.25) and p.report.complete
    np.testing.assert_array_equal(
        p.variables["params"]["head"]["kernel"], variables["params"]["head"]["kernel"]
    )


def test_load_with_another_num_outputs_reinitialises_the_head(mlp_file, monkeypatch, tmp_path):
    path, digest, variables = mlp_file
    register(monkeypatch, path, digest, format="jdl", num_classes=10, arch="mnist1d_mlp")
    p = pretrained.load("test-arch", cache_dir=tmp_path / "cache", num_outputs=3, seed=1)
    assert p.model == nn.get_model("mnist1d_mlp", num_outputs=3)
    params = p.variables["params"]
    assert params["head"]["kernel"].shape == (100, 3) and params["head"]["bias"].shape == (3,)
    for layer in ("Dense_0", "Dense_1"):  # the backbone is the checkpoint's
        np.testing.assert_array_equal(params[layer]["kernel"], variables["params"][layer]["kernel"])
    assert p.info["num_classes"] == 3 and p.info["checkpoint_num_classes"] == 10
    # The same number of classes keeps the checkpoint's head.
    same = pretrained.load("test-arch", cache_dir=tmp_path / "cache", num_outputs=10)
    np.testing.assert_array_equal(
        same.variables["params"]["head"]["kernel"], variables["params"]["head"]["kernel"]
    )
    assert "checkpoint_num_classes" not in same.info


def test_local_file_with_num_outputs(mlp_file):
    path, _, variables = mlp_file
    p = pretrained.load(path, num_outputs=4)
    assert p.model.num_outputs == 4 and p.variables["params"]["head"]["kernel"].shape == (100, 4)
    np.testing.assert_array_equal(
        p.variables["params"]["Dense_1"]["bias"], variables["params"]["Dense_1"]["bias"]
    )


def test_torchvision_checkpoint_by_arch_with_a_new_fc(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    nn.register_model(
        lambda **kw: nn.ResNet(**{"stage_sizes": (1, 1), "width": 4, **kw}), name="tiny_resnet"
    )
    sd = torch_state_dict()
    path = tmp_path / "model.safetensors"
    save_file(sd, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    register(monkeypatch, path, digest, format="torchvision", num_classes=3, arch="tiny_resnet")
    p = pretrained.load("test-arch", cache_dir=tmp_path / "cache", num_outputs=5)
    assert p.model == nn.ResNet(stage_sizes=(1, 1), width=4, num_outputs=5)
    assert p.variables["params"]["fc"]["kernel"].shape == (8, 5)
    np.testing.assert_array_equal(
        p.variables["params"]["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0)
    )
    assert p.info["checkpoint_num_classes"] == 3


def test_arch_is_checked_and_every_published_entry_has_one():
    with pytest.raises(ValueError, match="arch 'resnet51' is not a jdl.nn.get_model name"):
        hub.HubEntry(name="x", url="https://a/b", format="jdl", sha256="0" * 64, arch="resnet51")
    with pytest.raises(ValueError, match="has no arch"):
        hub.HubEntry(name="x", url="https://a/b", format="jdl", sha256="0" * 64).build_model()
    for entry in hub.REGISTRY.values():
        assert entry.arch in nn.list_models()
    assert hub.REGISTRY["resnet34.tv_in1k"].build_model() == nn.resnet34()
    keras = hub.REGISTRY["resnet50.keras_in1k"].build_model(num_outputs=7)
    assert keras == nn.resnet50(num_outputs=7, stride_in_1x1=True, bn_epsilon=1.001e-5)
    assert hub.REGISTRY["vgg19.keras_in1k"].build_model() == nn.vgg19(dropout=0.0)
