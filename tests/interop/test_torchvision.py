"""torchvision ResNets (random init, eval mode) vs jdl with the converted weights."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from jdl import pretrained

pytestmark = pytest.mark.interop

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _random_torchvision(arch: str, seed: int = 0, *, size: int = 128, batch: int = 8):
    """A torchvision model with random weights and BatchNorm statistics set by torch itself.

    Weights are torchvision's random initialisation, BatchNorm scales and shifts are
    randomised (so their mapping is tested), and the running statistics are calibrated by a
    training-mode pass over ``batch`` random ``size`` x ``size`` images (cumulative
    averages), as training would leave them: activations stay normalised and logits have a
    realistic scale. A model without BatchNorm keeps torchvision's initialisation.
    """
    torch.manual_seed(seed)
    net = getattr(tv_models, arch)(weights=None)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:
        with torch.no_grad():
            for m in norms:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            net.train()
            net(torch.randn(batch, 3, size, size))
        for m in norms:
            m.momentum = 0.1
    return net.eval()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_logits_match_torchvision(arch, tmp_path):
    net = _random_torchvision(arch)
    path = tmp_path / f"{arch}.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))

    loaded = pretrained.from_torchvision(path)
    assert loaded.report.complete
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = np.asarray(loaded.model.apply(loaded.variables, x.transpose(0, 2, 3, 1), train=False))
    diff = float(np.max(np.abs(out - ref)))
    print(f"{arch}: max |logit diff| = {diff:.3g} (logit scale {np.max(np.abs(ref)):.3g})")
    assert out.shape == ref.shape == (2, 1000)
    assert diff < 1e-4


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_default_init_matches_to_float32_rounding(arch):
    """torchvision's plain initialisation (running stats 0/1): logits grow large with depth,
    so the check is relative to the logit scale."""
    torch.manual_seed(0)
    net = getattr(tv_models, arch)(weights=None).eval()
    loaded = pretrained.from_torchvision(net.state_dict())
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = np.asarray(loaded.model.apply(loaded.variables, x.transpose(0, 2, 3, 1), train=False))
    diff, scale = float(np.max(np.abs(out - ref))), float(np.max(np.abs(ref)))
    print(f"{arch} default init: max |logit diff| = {diff:.3g} (logit scale {scale:.3g})")
    assert diff <= 1e-5 * scale


def test_resnet18_pth_via_weights_only_and_train_mode(tmp_path):
    net = _random_torchvision("resnet18", seed=1)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    loaded = pretrained.load(path)  # .pth -> torch.load(weights_only=True)
    x = np.random.default_rng(1).normal(size=(4, 3, 64, 64)).astype(np.float32)
    net.train()  # BatchNorm on batch statistics in both frameworks
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out, _ = loaded.model.apply(
        loaded.variables, x.transpose(0, 2, 3, 1), train=True, mutable=["batch_stats"]
    )
    diff = float(np.max(np.abs(np.asarray(out) - ref)))
    print(f"resnet18 train mode: max |logit diff| = {diff:.3g}")
    assert diff < 1e-4


def test_jdl_to_torch_round_trip():
    net = _random_torchvision("resnet18", seed=2)
    loaded = pretrained.from_torchvision(net.state_dict())
    state = {
        k: torch.from_numpy(np.array(v))
        for k, v in pretrained.jdl_resnet_to_torch(loaded.variables).items()
    }
    missing, unexpected = tv_models.resnet18(weights=None).load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing)


class _RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_pth_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _RunsCode()}, f)
    with pytest.raises(pretrained.WeightFileError, match="weights_only"):
        pretrained.from_torchvision(path)


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_vgg_logits_match_torchvision(arch, tmp_path):
    """At 224 x 224 (the final feature map is 7 x 7, so torchvision's AdaptiveAvgPool2d is the
    identity and jdl's VGG, which has none, computes the same function)."""
    # 224 x 224 calibration: the size at which torchvision's adaptive pool is the identity.
    net = _random_torchvision(arch, size=224, batch=4)
    path = tmp_path / f"{arch}.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))

    loaded = pretrained.from_torchvision(path)
    assert loaded.report.complete
    assert loaded.model.config == "vgg16" and loaded.model.batch_norm == arch.endswith("_bn")
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = np.asarray(loaded.model.apply(loaded.variables, x.transpose(0, 2, 3, 1), train=False))
    diff = float(np.max(np.abs(out - ref)))
    print(f"{arch}: max |logit diff| = {diff:.3g} (logit scale {np.max(np.abs(ref)):.3g})")
    assert out.shape == ref.shape == (2, 1000)
    assert diff < 1e-4

    state = {
        k: torch.from_numpy(np.array(v))
        for k, v in pretrained.jdl_vgg_to_torch(loaded.variables).items()
    }
    missing, unexpected = getattr(tv_models, arch)(weights=None).load_state_dict(
        state, strict=False
    )
    assert not unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing)
    for k, v in net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(state[k].numpy(), v.numpy())


@pytest.mark.parametrize(
    ("arch", "name"),
    [
        ("resnext50_32x4d", "ResNeXt (groups=32, width 4)"),
        ("wide_resnet50_2", "Wide ResNet (width x2)"),
    ],
)
def test_resnext_and_wide_resnet_are_refused_by_name(arch, name):
    state = getattr(tv_models, arch)(weights=None).state_dict()
    with pytest.raises(pretrained.WeightFileError, match=re.escape(name)):
        pretrained.from_torchvision(state)
