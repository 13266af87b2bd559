"""Malformed weight files give a WeightFileError naming the file and what is wrong.

Safetensors files are built byte by byte (an 8-byte little-endian header length, a JSON
header, the data), Keras files with h5py; none of these errors may surface as a raw
safetensors, struct, h5py or numpy error.
"""

from __future__ import annotations

import json
import struct

import h5py
import numpy as np
import pytest

from jdl import pretrained
from jdl.pretrained import _files

# -- safetensors ----------------------------------------------------------------------------


def _safetensors_bytes(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


_GOOD = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
_DATA = np.arange(6, dtype=np.float32).tobytes()


def test_a_hand_built_file_reads(tmp_path):
    """Control: the builder makes valid files, so the failures below are the edits'."""
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_safetensors_bytes(_GOOD, _DATA))
    tensors, _ = _files.read_safetensors(path)
    assert np.array_equal(tensors["w"], np.arange(6).reshape(2, 3))


def _raw_header_json_cut_short() -> bytes:
    raw = json.dumps(_GOOD).encode()
    return _safetensors_bytes(raw[:-5], _DATA)


_MALFORMED = {
    "too short": (b"\x01\x02", "shorter than the 8-byte header length"),
    "header longer than the file": (
        _safetensors_bytes(_GOOD, _DATA, length=5000),
        "header length field says 5000 bytes, but only",
    ),
    "absurd header length": (
        _safetensors_bytes(_GOOD, _DATA, length=2**40),
        f"header length field says {2**40} bytes",
    ),
    "file cut inside the header": (
        _safetensors_bytes(_GOOD, _DATA)[:30],
        "bytes follow it (the header is truncated",
    ),
    "truncated header JSON": (_raw_header_json_cut_short(), "header is not valid JSON"),
    "invalid JSON": (_safetensors_bytes(b"{not json!}", _DATA), "header is not valid JSON"),
    "not an object": (_safetensors_bytes(b"[1, 2]", _DATA), "header is a JSON list"),
    "offsets past the end": (
        _safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [1000, 1024]}}, _DATA
        ),
        "tensor 'w' ends at byte 1024 of the data section, but the file holds only 24 bytes",
    ),
    "unknown dtype": (
        _safetensors_bytes({"w": {"dtype": "F128", "shape": [2], "data_offsets": [0, 32]}}, _DATA),
        "tensor 'w' has unknown dtype 'F128'",
    ),
    "offsets that disagree with the shape": (
        _safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 24]}}, _DATA
        ),
        "tensor 'w' (F32, shape (4, 3)) needs 48 bytes but its data_offsets [0, 24] span 24",
    ),
    "truncated data section": (
        _safetensors_bytes(_GOOD, _DATA[:10]),
        "the data section is truncated",
    ),
    "missing fields": (
        _safetensors_bytes({"w": {"dtype": "F32"}}, _DATA),
        "header entry of tensor 'w'",
    ),
    "bad metadata": (
        _safetensors_bytes({"__metadata__": {"format": 1}, **_GOOD}, _DATA),
        "__metadata__",
    ),
}


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_malformed_safetensors_name_the_file_and_the_problem(tmp_path, case):
    content, problem = _MALFORMED[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    for read in (_files.read_safetensors, pretrained.load, pretrained.from_torchvision):
        with pytest.raises(pretrained.WeightFileError) as info:
            read(path)
        message = str(info.value)
        assert repr(str(path)) in message and f"({len(content)} bytes)" in message
        assert "not a readable safetensors file" in message and problem in message
        assert "SafetensorError" not in message and "struct" not in message


def test_a_truncated_jdl_file_names_the_truncation(weights_file):
    path, _ = weights_file
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 7])
    with pytest.raises(pretrained.WeightFileError, match="the data section is truncated"):
        pretrained.load(path)
    with pytest.raises(pretrained.WeightFileError, match="the data section is truncated"):
        pretrained.load_jdl(path)


# -- Keras HDF5 -----------------------------------------------------------------------------


def _vgg_layers(**replace):
    """Keras VGG16-style layers of a tiny VGG (see test_keras_mapping), some replaced."""
    rng = np.random.default_rng(0)
    w = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    layers = {
        "block1_conv1": [("kernel", w(3, 3, 3, 4)), ("bias", w(4))],
        "block1_pool": [],
        "block2_conv1": [("kernel", w(3, 3, 4, 8)), ("bias", w(8))],
        "fc1": [("kernel", w(32, 16)), ("bias", w(16))],
        "predictions": [("kernel", w(16, 3)), ("bias", w(3))],
    }
    return {**layers, **replace}


def _write_legacy(path, layers, *, skip_group=None, skip_dataset=None):
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for name, weights in layers.items():
            if name == skip_group:
                continue
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/{wn}:0".encode() for wn, _ in weights]
            for wn, a in weights:
                if (name, wn) != skip_dataset:
                    g.create_dataset(f"{name}/{wn}:0", data=a)
    return path


def _error(path, **kw):
    with pytest.raises(pretrained.WeightFileError) as info:
        pretrained.from_keras(path, **kw)
    message = str(info.value)
    assert repr(str(path)) in message
    return message


def test_a_hand_built_keras_file_loads(tmp_path):
    """Control: the builder's file loads, so the failures below are the edits'."""
    p = pretrained.from_keras(_write_legacy(tmp_path / "ok.h5", _vgg_layers()),
                              input_shape=(1, 8, 8, 3))  # fmt: skip
    assert p.report.complete


def test_keras_file_without_the_listed_weight_groups(tmp_path):
    message = _error(_write_legacy(tmp_path / "w.h5", _vgg_layers(), skip_group="block2_conv1"))
    assert "layer 'block2_conv1' is listed in 'layer_names' but the file has no group" in message
    message = _error(_write_legacy(tmp_path / "d.h5", _vgg_layers(), skip_dataset=("fc1", "bias")))
    assert "layer 'fc1' lists weight 'fc1/bias:0', but the file has no such dataset" in message
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("layers").create_group("dense").create_group("vars")
    assert "without any weights" in _error(other)
    numbered = tmp_path / "k3.h5"
    with h5py.File(numbered, "w") as f:
        f.create_group("layers/dense/vars").create_dataset("kernel", data=np.zeros((2, 2)))
    assert "'layers/dense/vars' holds ['kernel'], expected datasets named 0, 1" in _error(numbered)


def test_keras_layer_with_the_wrong_number_of_weights(tmp_path):
    extra = _vgg_layers(
        block1_conv1=[*_vgg_layers()["block1_conv1"], ("extra", np.zeros(4, np.float32))]
    )
    message = _error(_write_legacy(tmp_path / "w.h5", extra))
    assert "layer 'block1_conv1' should hold a conv kernel (rank 4)" in message
    assert "it holds 3 weight(s): kernel (3, 3, 3, 4), bias (4,), extra (4,)" in message
    bn = tmp_path / "bn.h5"
    _write_legacy(bn, {"conv1_bn": [("gamma", np.ones(4, np.float32))]})
    assert "layer 'conv1_bn' should hold four vectors" in _error(bn)


def test_keras_datasets_of_the_wrong_shape(tmp_path):
    """Shapes that contradict each other within a layer are a damaged file; shapes that
    contradict the model are a mismatch listing the variable and both shapes."""
    bad_bias = _vgg_layers(fc1=[("kernel", np.zeros((32, 16), np.float32)),
                                ("bias", np.zeros(17, np.float32))])  # fmt: skip
    message = _error(_write_legacy(tmp_path / "w.h5", bad_bias))
    assert "layer 'fc1' should hold a Dense kernel (rank 2)" in message
    assert "kernel (32, 16), bias (17,)" in message
    flat_kernel = _vgg_layers(block2_conv1=[("kernel", np.zeros((36, 8), np.float32))])
    assert "layer 'block2_conv1' should hold a conv kernel" in _error(
        _write_legacy(tmp_path / "r.h5", flat_kernel)
    )
    wide = _vgg_layers(fc1=[("kernel", np.zeros((32, 20), np.float32)),
                            ("bias", np.zeros(20, np.float32))])  # fmt: skip
    vgg = pretrained.keras._vgg_from_keras_weights(_vgg_layers())
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.from_keras(_write_legacy(tmp_path / "m.h5", wide), vgg, input_shape=(1, 8, 8, 3))
    message = str(info.value)
    assert repr(str(tmp_path / "m.h5")) in message
    assert "params/fc1/kernel: expected (32, 16), found (32, 20)" in message


def test_a_non_hdf5_file_named_h5_and_a_truncated_one(tmp_path):
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"<html>404 Not Found</html>")
    for read in (pretrained.from_keras, pretrained.load, pretrained.read_keras_weights):
        with pytest.raises(pretrained.WeightFileError, match="has no HDF5 signature") as info:
            read(fake)
        assert repr(str(fake)) in str(info.value)
    cut = _write_legacy(tmp_path / "cut.h5", _vgg_layers())
    raw = cut.read_bytes()
    cut.write_bytes(raw[: len(raw) - 300])
    message = _error(cut)
    assert "is not a readable HDF5 weight file" in message and "truncated" in message
