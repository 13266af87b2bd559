"""Bundled datasets are prepared once, atomically, and reused."""

import threading

import numpy as np
import pytest

import jdl.data as jd
from jdl.data.builders import JdlCoffee
from jdl.data.prepare import _prepare


def _dataset_files(root):
    return sorted(p for p in (root / "jdl_coffee").rglob("*") if p.is_file())


def test_second_load_reuses_the_files(fresh_dir, monkeypatch):
    first = jd.as_arrays(jd.load("coffee", data_dir=fresh_dir))
    files = _dataset_files(fresh_dir)
    assert any(f.name.startswith("jdl_coffee-train.array_record") for f in files)
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    def must_not_run(self):
        raise AssertionError("the dataset was generated a second time")

    monkeypatch.setattr(JdlCoffee, "_make_arrays", must_not_run)
    again = jd.as_arrays(jd.load("coffee", data_dir=fresh_dir))
    np.testing.assert_array_equal(again["y"], first["y"])
    assert {f: f.stat().st_mtime_ns for f in _dataset_files(fresh_dir)} == mtimes


def test_failed_preparation_leaves_nothing_visible(fresh_dir, monkeypatch):
    def generate_then_fail(self, x, y):
        for i in range(10):
            yield i, {"x": x[i], "y": y[i]}
        raise RuntimeError("disk full (simulated)")

    with monkeypatch.context() as mp:
        mp.setattr(JdlCoffee, "_generate_examples", generate_then_fail)
        with pytest.raises(RuntimeError, match="disk full"):
            jd.load("coffee", data_dir=fresh_dir)
    # No final version directory, and the temporary incomplete.* directory is gone.
    leftovers = [p.name for p in (fresh_dir / "jdl_coffee").iterdir()]
    assert leftovers == []
    # The next call prepares it properly.
    assert len(jd.load("coffee", data_dir=fresh_dir)) == 512
    assert [p.name for p in (fresh_dir / "jdl_coffee").iterdir()] == ["1.0.0"]


def test_concurrent_preparations_generate_once(fresh_dir, monkeypatch):
    calls = []
    real = JdlCoffee._make_arrays

    def counting(self):
        calls.append(threading.get_ident())
        return real(self)

    monkeypatch.setattr(JdlCoffee, "_make_arrays", counting)
    errors = []

    def worker():
        try:
            _prepare("coffee", fresh_dir)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 1
    assert len(jd.load("coffee", "test", data_dir=fresh_dir)) == 128


def test_losing_a_preparation_race_reuses_the_winners_copy(fresh_dir, monkeypatch):
    real = JdlCoffee.download_and_prepare

    def prepared_elsewhere_then_fail(self, **kwargs):
        # Another process (here: a second builder) finishes first; this one's rename fails.
        real(JdlCoffee(data_dir=str(fresh_dir)), **kwargs)
        raise OSError("[Errno 39] Directory not empty (simulated rename race)")

    monkeypatch.setattr(JdlCoffee, "download_and_prepare", prepared_elsewhere_then_fail)
    assert len(jd.load("coffee", data_dir=fresh_dir)) == 512


def test_prepare_rejects_unknown_names(fresh_dir):
    with pytest.raises(jd.UnknownDatasetError, match=r"bundled datasets: \['iris'"):
        _prepare("mnist", fresh_dir)
    assert not fresh_dir.exists()
