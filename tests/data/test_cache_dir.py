"""Where bundled datasets are cached: argument > $JDL_DATA_DIR > $XDG_CACHE_HOME > ~/.cache."""

from pathlib import Path

import pytest

from jdl.data import resolve_data_dir


def test_session_cache_is_the_temporary_directory(data_dir):
    # The conftest points JDL_DATA_DIR at a temp dir: tests never touch the home dir.
    assert resolve_data_dir() == data_dir
    assert not str(resolve_data_dir()).startswith(str(Path.home() / ".cache"))


def test_argument_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JDL_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("JDL_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"


def test_xdg_cache_home_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("JDL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "jdl" / "datasets"
    # A relative XDG_CACHE_HOME must be ignored (XDG base-directory spec).
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "jdl" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "jdl" / "datasets"


def test_user_and_relative_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/d") == tmp_path / "d"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel") == tmp_path / "rel"


def test_bad_data_dir():
    with pytest.raises(TypeError, match="data_dir must be a str, a path or None, got int"):
        resolve_data_dir(3)
    with pytest.raises(ValueError, match="non-empty"):
        resolve_data_dir("")
