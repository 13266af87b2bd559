"""Catalog loading never touches the network without download=True, and namespaced TFDS
names (whose builder code TFDS fetches) need allow_remote_code=True (issue #19)."""

from __future__ import annotations

import socket
import sys

import pytest

import jdl.data as jd
from jdl.data import catalog

_REMOTE_NAMES = [
    "huggingface:mnist",
    "huggingface:mnist/mnist:1.0.0",
    "kaggle:someone/some-dataset",
    "community_ns:my_dataset/config",
]


class NetworkUsed(AssertionError):
    """Raised by the socket guard: something tried to reach the network."""


@pytest.fixture
def no_network(monkeypatch):
    """Every way out to the network raises, and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise NetworkUsed(f"network access attempted: {args[:2]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def no_tfds_lookup(monkeypatch):
    """TFDS is never asked to find (and so import) a builder."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import read_only_builder

    def refuse(*args, **kwargs):
        raise AssertionError(f"TFDS was asked for a builder: {args!r}")

    monkeypatch.setattr(tfds, "builder", refuse)
    monkeypatch.setattr(read_only_builder, "builder_from_files", refuse)


@pytest.mark.parametrize("name", _REMOTE_NAMES)
@pytest.mark.parametrize("download", [False, True])
def test_namespaced_names_need_an_explicit_opt_in(
    name, download, tmp_path, no_network, no_tfds_lookup
):
    modules = set(sys.modules)
    with pytest.raises(jd.RemoteCodeError) as info:
        jd.load(name, data_dir=tmp_path, download=download)
    message = str(info.value)
    assert repr(name) in message and "allow_remote_code=True" in message
    assert isinstance(info.value, PermissionError)
    with pytest.raises(jd.RemoteCodeError):
        jd.dataset_info(name, data_dir=tmp_path)
    assert not no_network and not list(tmp_path.iterdir())
    assert not {"datasets", "huggingface_hub"} & (set(sys.modules) - modules)


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("mnist", None),
        ("cifar10:3.0.2", None),  # a version, not a namespace
        ("mnist:3.*.*", None),
        ("imagenet2012/subset:5.0.0", None),
        ("huggingface:mnist", "huggingface"),
        ("kaggle:a/b:1.0.0", "kaggle"),
        ("ns:ds:1.0.0", "ns"),
    ],
)
def test_namespaces_are_parsed_as_tfds_does(name, namespace):
    from tensorflow_datasets.core import naming

    assert catalog._namespace(name) == namespace
    assert naming.parse_builder_name_kwargs(name)[0].namespace == namespace


def test_unprepared_catalog_data_is_an_error_without_any_network(tmp_path, no_network):
    with pytest.raises(jd.DatasetNotPreparedError) as info:
        jd.load("mnist", "train", data_dir=tmp_path)
    message = str(info.value)
    assert "'mnist' is not prepared locally" in message and str(tmp_path) in message
    assert "download=True" in message and "download_and_prepare" in message
    assert not no_network


@pytest.mark.parametrize("name", ["huggingface:mnist", "kaggle:someone/some-dataset"])
def test_opted_in_namespaced_names_read_prepared_files_only(name, tmp_path, no_network):
    modules = set(sys.modules)
    with pytest.raises(jd.DatasetNotPreparedError) as info:
        jd.load(name, data_dir=tmp_path, allow_remote_code=True)
    message = str(info.value)
    assert repr(name) in message and "not prepared locally" in message and str(tmp_path) in message
    assert "download=True, allow_remote_code=True" in message
    with pytest.raises(jd.DatasetNotPreparedError):
        jd.dataset_info(name, data_dir=tmp_path, allow_remote_code=True)
    assert not no_network and not list(tmp_path.iterdir())
    assert not {"datasets", "huggingface_hub"} & (set(sys.modules) - modules)


def test_opted_in_download_goes_to_tfds(tmp_path, monkeypatch):
    seen = []

    def fake_builder(name, **kwargs):
        seen.append((name, kwargs))
        raise catalog.tfds.core.DatasetNotFoundError("stop here")

    monkeypatch.setattr(catalog.tfds, "builder", fake_builder)
    with pytest.raises(jd.UnknownDatasetError):
        jd.load("kaggle:a/b", data_dir=tmp_path, download=True, allow_remote_code=True)
    assert seen == [("kaggle:a/b", {"file_format": "array_record", "data_dir": str(tmp_path)})]
