"""Download to the cache with checksum verification: file:// URLs and a local HTTP server."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from jdl import nn, pretrained
from jdl.pretrained import hub


def entry(url, digest, **kw):
    return hub.HubEntry(
        name="test-mlp", url=url, format="jdl", sha256=digest, filename="mlp.safetensors", **kw
    )


def test_file_url_download_is_verified_and_cached(weights_file, cache, monkeypatch):
    path, digest = weights_file
    got = hub.download(entry(path.as_uri(), digest), cache=cache)
    assert got == cache / "mlp.safetensors" and got.read_bytes() == path.read_bytes()
    monkeypatch.setattr(hub, "_fetch", lambda *a: pytest.fail("a verified cache is reused"))
    assert hub.download(entry(path.as_uri(), digest), cache=cache) == got


def test_checksum_mismatch_discards_the_download(weights_file, cache):
    path, digest = weights_file
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(pretrained.ChecksumError) as info:
        hub.download(entry(path.as_uri(), wrong), cache=cache)
    message = str(info.value)
    assert f"expected sha256 {wrong}" in message and f"got sha256 {digest}" in message
    assert "discarded" in message
    assert list(cache.iterdir()) == []  # neither the file nor a temporary one


def test_http_download_and_load_by_name(weights_file, cache, http_url, monkeypatch):
    path, digest = weights_file
    monkeypatch.setitem(hub.REGISTRY, "test-mlp", entry(f"{http_url}/{path.name}", digest))
    p = pretrained.load("test-mlp", cache_dir=cache)
    assert p.model == nn.MLP(widths=(8,), num_outputs=3) and p.report.complete
    assert p.info["name"] == "test-mlp" and p.info["mean"] == (0.485, 0.456, 0.406)
    assert (cache / "mlp.safetensors").read_bytes() == path.read_bytes()


def test_http_error_leaves_nothing(weights_file, cache, http_url):
    _, digest = weights_file
    with pytest.raises(pretrained.WeightFileError, match="could not download"):
        hub.download(entry(f"{http_url}/missing.safetensors", digest), cache=cache)
    assert list(cache.iterdir()) == []


def test_truncated_download_is_rejected_by_checksum(weights_file, cache, tmp_path):
    path, digest = weights_file
    partial = tmp_path / "partial.safetensors"
    partial.write_bytes(path.read_bytes()[:100])
    with pytest.raises(pretrained.ChecksumError):
        hub.download(
            entry("https://example.invalid/mlp.safetensors", digest), source=partial, cache=cache
        )
    assert list(cache.iterdir()) == []


def test_tampered_cache_is_fetched_again(weights_file, cache):
    path, digest = weights_file
    cache.mkdir()
    (cache / "mlp.safetensors").write_bytes(b"tampered")
    got = hub.download(entry(path.as_uri(), digest), cache=cache)
    assert got.read_bytes() == path.read_bytes()


def test_source_overrides_the_url_and_prefix_and_md5_checks(weights_file, cache):
    path, digest = weights_file
    offline = entry("https://example.invalid/mlp.safetensors", digest[:8])
    assert hub.download(offline, source=path, cache=cache).is_file()
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    e = hub.HubEntry(name="m", url="https://example.invalid/x.h5", format="keras", md5=md5)
    assert hub.download(e, source=str(path), cache=cache / "k").read_bytes() == path.read_bytes()


def test_entries_are_validated_and_names_checked(cache):
    with pytest.raises(ValueError, match="exactly one of sha256= or md5="):
        hub.HubEntry(name="x", url="https://a/b", format="jdl")
    with pytest.raises(ValueError, match="8 to 64 hex digits"):
        hub.HubEntry(name="x", url="https://a/b", format="jdl", sha256="abc")
    with pytest.raises(ValueError, match="format must be"):
        hub.HubEntry(name="x", url="https://a/b", format="onnx", sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="resnet50.tv_in1k"):
        pretrained.load("no-such-model")
    with pytest.raises(pretrained.WeightFileError, match="unsupported scheme"):
        hub.download(entry("ftp://example.invalid/x", "0" * 64), cache=cache)
    assert list(cache.iterdir()) == []


def test_registry_knows_the_published_checkpoints():
    names = pretrained.available()
    for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        e = hub.REGISTRY[f"{arch}.tv_in1k"]
        assert e.needs_torch and e.url.endswith(f"{arch}-{e.sha256}.pth") and e.num_classes == 1000
    assert {"vgg16.keras_in1k", "vgg19.keras_in1k"} <= set(names)
    assert hub.REGISTRY["vgg16.keras_in1k"].info["channel_order"] == "BGR"
    assert np.allclose(hub.REGISTRY["vgg16.keras_in1k"].mean, (103.939, 116.779, 123.68))


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JDL_PRETRAINED_DIR", str(tmp_path / "p"))
    assert hub.cache_dir() == tmp_path / "p"
    monkeypatch.delenv("JDL_PRETRAINED_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert hub.cache_dir() == tmp_path / "x" / "jdl" / "pretrained"
