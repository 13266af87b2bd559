"""jdl._core.cache: one cache root for datasets and pretrained weights."""

from jdl._core.cache import cache_dir, cache_root
from jdl.data import resolve_data_dir
from jdl.pretrained import hub


def test_absolute_xdg_cache_home_is_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "jdl"


def test_relative_xdg_cache_home_is_ignored_by_every_cache(tmp_path, monkeypatch):
    # The XDG base-directory spec: a relative path in XDG_CACHE_HOME is invalid, ignore it.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for value in ("relative/dir", ""):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert cache_root() == tmp_path / "home" / ".cache" / "jdl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "jdl"
    # Datasets and pretrained weights agree (they used to disagree about a relative value).
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    monkeypatch.delenv("JDL_DATA_DIR", raising=False)
    monkeypatch.delenv("JDL_PRETRAINED_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "jdl" / "datasets"
    assert hub.cache_dir() == tmp_path / "home" / ".cache" / "jdl" / "pretrained"


def test_the_environment_variable_overrides_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JDL_THING_DIR", raising=False)
    assert cache_dir("things", "JDL_THING_DIR") == tmp_path / "xdg" / "jdl" / "things"
    monkeypatch.setenv("JDL_THING_DIR", "rel")
    monkeypatch.chdir(tmp_path)
    assert cache_dir("things", "JDL_THING_DIR") == tmp_path / "rel"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JDL_THING_DIR", "~/t")
    assert cache_dir("things", "JDL_THING_DIR") == tmp_path / "home" / "t"
