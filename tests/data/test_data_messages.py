"""What a user reads when data is prepared or missing (issue #18).

A bundled dataset's first load prints one line of jdl's own (nothing is downloaded), not
TFDS' "Downloading and preparing dataset Unknown size ..."; a catalog dataset that is not
prepared names the data directory, how it was chosen, and how to get the data from Python,
from the command line, or by copying files in -- without touching the network.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import jdl.data as jd
from jdl.data.cache import describe_data_dir


@pytest.fixture
def no_network(monkeypatch):
    """Every way out to the network raises; the attempts are recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise AssertionError(f"network access attempted: {args[:2]!r}")

    for owner, name in [
        (socket.socket, "connect"),
        (socket.socket, "connect_ex"),
        (socket, "create_connection"),
        (socket, "getaddrinfo"),
    ]:
        monkeypatch.setattr(owner, name, refuse)
    return attempts


def test_first_load_prints_jdls_line_not_tfds_download_message(fresh_dir, capfd, no_network):
    source = jd.load("iris", "train", data_dir=fresh_dir)
    assert len(source) == 120
    out, err = capfd.readouterr()
    both = out + err
    assert "Downloading and preparing" not in both and "Unknown size" not in both
    assert "downloaded and prepared" not in both
    lines = [line for line in err.splitlines() if line.startswith("jdl: preparing")]
    assert lines == [
        f"jdl: preparing dataset 'iris' (bundled with jdl: generated locally, no download) "
        f"in {fresh_dir} -- once; later loads reuse it."
    ]
    assert "jdl: preparing" not in out  # stderr only: a program's stdout stays its own
    jd.load("iris", "test", data_dir=fresh_dir)  # prepared: nothing more is said
    out, err = capfd.readouterr()
    assert "jdl: preparing" not in out + err and "Downloading" not in out + err
    assert not no_network


def test_tfds_still_has_the_methods_jdl_silences():
    # The bundled builders override these two TFDS methods to drop TFDS' misleading lines:
    # if a TFDS release renames them, the test above fails, and this one says why.
    import tensorflow_datasets as tfds

    from jdl.data.builders import BUILDERS

    for method in ("_log_download_bytes", "_log_download_done"):
        assert hasattr(tfds.core.DatasetBuilder, method), method
        for cls in BUILDERS.values():
            assert getattr(cls, method) is not getattr(tfds.core.DatasetBuilder, method)


def _not_prepared_message(**kwargs) -> str:
    with pytest.raises(jd.DatasetNotPreparedError) as info:
        jd.load("mnist", "train", **kwargs)
    return str(info.value)


def _assert_says_how_to_get_it(message: str, root: Path) -> None:
    assert f"'mnist' is not prepared locally in {root} (" in message
    assert "download=True" in message and "jdl.data.load('mnist'" in message  # Python
    assert "python -m jdl train --dataset mnist" in message and "--download" in message  # CLI
    assert "array_record" in message and "mnist/<version>/" in message  # copying files in


def test_not_prepared_names_the_data_dir_argument(tmp_path, no_network):
    message = _not_prepared_message(data_dir=tmp_path)
    _assert_says_how_to_get_it(message, tmp_path)
    assert "chosen by the data_dir argument (--data-dir on the command line)" in message
    assert f"data_dir={str(tmp_path)!r}, download=True" in message
    assert f"--data-dir {tmp_path} --download" in message
    assert not no_network and not list(tmp_path.rglob("*.array_record*"))


def test_not_prepared_names_jdl_data_dir_from_the_environment(tmp_path, monkeypatch, no_network):
    root = tmp_path / "from-env"
    monkeypatch.setenv("JDL_DATA_DIR", str(root))
    message = _not_prepared_message()
    _assert_says_how_to_get_it(message, root)
    assert "chosen by $JDL_DATA_DIR" in message and "data_dir='" not in message
    assert "jdl.data.load('mnist', download=True)" in message
    assert not no_network and not list(tmp_path.rglob("*.array_record*"))


def test_not_prepared_names_jdls_default_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("JDL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    message = _not_prepared_message()
    root = tmp_path / "xdg" / "jdl" / "datasets"
    _assert_says_how_to_get_it(message, root)
    assert "jdl's default, as neither data_dir (--data-dir on the command line) nor " in message
    assert "$JDL_DATA_DIR is set" in message
    assert not no_network and not list(tmp_path.rglob("*.array_record*"))


def test_namespaced_not_prepared_needs_remote_code_and_has_no_cli_way(tmp_path, no_network):
    with pytest.raises(jd.DatasetNotPreparedError) as info:
        jd.load("huggingface:mnist", data_dir=tmp_path, allow_remote_code=True)
    message = str(info.value)
    assert f"not prepared locally in {tmp_path} (" in message
    assert "download=True, allow_remote_code=True)" in message
    assert "python -m jdl" not in message  # the command line cannot allow remote code
    assert not no_network


def test_catalog_datasets_use_jdls_data_directory(tmp_path, monkeypatch):
    # One cache for every dataset: a catalog builder reads $JDL_DATA_DIR, not TFDS' default.
    from jdl.data import catalog

    seen = []

    def fake_builder(name, **kwargs):
        seen.append(kwargs)
        raise catalog.tfds.core.DatasetNotFoundError("stop here")

    monkeypatch.setattr(catalog.tfds, "builder", fake_builder)
    monkeypatch.setenv("JDL_DATA_DIR", str(tmp_path))
    with pytest.raises(jd.UnknownDatasetError):
        jd.load("mnist")
    assert seen == [{"file_format": "array_record", "data_dir": str(tmp_path)}]


def test_describe_data_dir_says_how_the_directory_was_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("JDL_DATA_DIR", str(tmp_path / "env"))
    assert describe_data_dir(tmp_path / "arg") == (
        tmp_path / "arg",
        "chosen by the data_dir argument (--data-dir on the command line)",
    )
    assert describe_data_dir() == (tmp_path / "env", "chosen by $JDL_DATA_DIR")
    monkeypatch.delenv("JDL_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root, how = describe_data_dir()
    assert root == tmp_path / "xdg" / "jdl" / "datasets" and how.startswith("jdl's default")


@pytest.mark.parametrize("kind", ["generator", "batches"])
def test_one_pass_iterators_are_not_sources(kind):
    import numpy as np

    arrays = jd.from_arrays(np.zeros((8, 2), np.float32), np.zeros(8, np.int64))
    stream = (arrays[i] for i in range(8)) if kind == "generator" else jd.batches(arrays, 4)
    with pytest.raises(TypeError) as info:
        jd.as_arrays(stream)
    message = str(info.value)
    said = "a generator" if kind == "generator" else "a batch iterator"
    assert said in message and "can only be read once" in message
    assert "jdl.data.from_arrays(x, y)" in message and "len() and [i]" in message
