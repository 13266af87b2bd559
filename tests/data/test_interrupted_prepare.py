"""What a killed preparation leaves is cleaned by the next one, never what a live one uses;
and jdl's TFDS calls leave no ``tmp*tfds`` directories in the system temp dir (issue #19)."""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import jdl.data as jd
from jdl.data.cache import file_lock
from jdl.data.prepare import _prepare

posix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="needs fcntl locks and SIGKILL (POSIX)"
)

# A child process that starts preparing "coffee" in argv[1], writes a few examples,
# says PAUSED and sleeps while holding the lock, its incomplete.* and .downloads-* dirs.
_PAUSED_PREPARATION = textwrap.dedent(
    """
    import sys, time
    import jdl.data as jd
    from jdl.data.builders import JdlCoffee

    def slow(self, x, y):
        for i in range(5):
            yield i, {"x": x[i], "y": y[i]}
        print("PAUSED", flush=True)
        time.sleep(600)

    JdlCoffee._generate_examples = slow
    jd.load("coffee", data_dir=sys.argv[1])
    """
)


def _start_paused_preparation(root: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TMPDIR": str(log.parent)}
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _PAUSED_PREPARATION, str(root)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == b"PAUSED":
                return proc
            if not line:  # the child exited
                break
    proc.kill()
    proc.wait()
    pytest.fail(f"the child preparation never paused; its stderr:\n{log.read_text()[-3000:]}")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def _leftovers(root: Path) -> list[Path]:
    return sorted((root / "jdl_coffee").glob("incomplete.*")) + sorted(root.glob(".downloads-*"))


def _removed_messages(caplog) -> str:
    messages = (r.getMessage() for r in caplog.records)
    return "\n".join(m for m in messages if "left by an interrupted preparation" in m)


@posix_only
def test_a_killed_preparation_is_cleaned_by_the_next_one_but_not_while_alive(
    fresh_dir, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="jdl.data")
    root = fresh_dir
    root.mkdir(parents=True)
    proc = _start_paused_preparation(root, tmp_path / "child.log")
    try:
        # How jdl named download directories before: it may be any bundled dataset's.
        legacy = root / ".downloads-abcd_123"
        legacy.mkdir()
        incomplete = sorted((root / "jdl_coffee").glob("incomplete.*"))
        downloads = sorted(root.glob(".downloads-jdl_coffee-*"))
        assert len(incomplete) == 1 and incomplete[0].is_dir(), _leftovers(root)
        assert len(downloads) == 1 and downloads[0].is_dir(), _leftovers(root)
        live = [*incomplete, *downloads, legacy]

        # While the child lives: preparing another dataset in the same cache, or waiting
        # to prepare the same one, removes none of the child's directories.
        assert len(jd.load("iris", data_dir=root)) == 120
        waiter_result = []
        waiter = threading.Thread(
            target=lambda: waiter_result.append(len(jd.load("coffee", data_dir=root))),
            daemon=True,
        )
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive(), "coffee was loaded while another process prepared it"
        assert all(p.exists() for p in live), _leftovers(root)
        assert _removed_messages(caplog) == ""
    finally:
        _kill(proc)  # SIGKILL: no finally block of the child runs

    # The killed child left its directories; the waiting load now gets the lock,
    # removes them (logging each one), and prepares the dataset.
    waiter.join(timeout=240)
    assert not waiter.is_alive()
    assert waiter_result == [512]
    assert [p for p in live if p.exists()] == []
    assert _leftovers(root) == []
    assert [p.name for p in (root / "jdl_coffee").iterdir()] == ["1.0.0"]
    messages = _removed_messages(caplog)
    for path in live:
        assert str(path) in messages
    assert "interrupted preparation of jdl dataset 'coffee'" in messages


def _make_leftovers(root: Path) -> list[Path]:
    """Leftovers of a killed preparation, named exactly as TFDS and jdl name them."""
    incomplete = root / "jdl_coffee" / "incomplete.X7Q2ZD_1.0.0"
    incomplete.mkdir(parents=True)
    (incomplete / "jdl_coffee-train.array_record-00000-of-00001").write_bytes(b"half")
    downloads = root / ".downloads-jdl_coffee-k3_9zq0a"
    downloads.mkdir()
    return [incomplete, downloads]


@posix_only
def test_leftovers_are_removed_before_preparing(fresh_dir, caplog):
    caplog.set_level(logging.INFO, logger="jdl.data")
    stale = _make_leftovers(fresh_dir)
    other = fresh_dir / ".downloads-jdl_iris-k3_9zq0a"  # another dataset's: not coffee's to judge
    other.mkdir()
    assert len(jd.load("coffee", data_dir=fresh_dir)) == 512
    assert [p for p in stale if p.exists()] == []
    assert other.exists()
    assert [p.name for p in (fresh_dir / "jdl_coffee").iterdir()] == ["1.0.0"]
    messages = _removed_messages(caplog)
    assert all(str(p) in messages for p in stale) and str(other) not in messages


@posix_only
def test_a_load_of_a_prepared_dataset_cleans_unless_the_lock_is_held(fresh_dir, caplog):
    caplog.set_level(logging.INFO, logger="jdl.data")
    _prepare("coffee", fresh_dir)
    stale = _make_leftovers(fresh_dir)
    legacy = fresh_dir / ".downloads-0a1b2c3d"
    legacy.mkdir()
    # A preparation holds coffee's lock (here: this test): the load neither waits nor
    # removes anything.
    with file_lock(fresh_dir / ".jdl_coffee.lock") as locked:
        assert locked
        assert len(jd.load("coffee", data_dir=fresh_dir)) == 512
        assert all(p.exists() for p in [*stale, legacy])
    # Another dataset is being prepared: coffee's own leftovers go, the legacy download
    # directory (which might be that preparation's) stays.
    with file_lock(fresh_dir / ".jdl_digits.lock"):
        jd.load("coffee", data_dir=fresh_dir)
        assert [p for p in stale if p.exists()] == [] and legacy.exists()
    jd.load("coffee", data_dir=fresh_dir)
    assert not legacy.exists()
    messages = _removed_messages(caplog)
    assert all(str(p) in messages for p in [*stale, legacy])


def test_file_lock_without_waiting(tmp_path):
    path = tmp_path / ".x.lock"
    with file_lock(path) as outer:
        with file_lock(path, blocking=False) as inner:
            assert (outer, inner) == (True, False)
    with file_lock(path, blocking=False) as free:
        assert free


# --- tmp*tfds directories in the system temp dir --------------------------------------


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The system temp dir (``tempfile.gettempdir()``), private to this test."""
    path = tmp_path / "systemp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def _tfds_tempdirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("tmp*tfds"))


def test_preparing_a_bundled_dataset_leaves_no_tfds_tempdir(fresh_dir, private_tmp):
    foreign = private_tmp / "tmpforeign1tfds"  # another process's: never touched
    foreign.mkdir()
    assert len(jd.load("coffee", data_dir=fresh_dir)) == 512
    jd.dataset_info("coffee", data_dir=fresh_dir)
    assert _tfds_tempdirs(private_tmp) == [foreign.name]


def test_catalog_calls_leave_no_tfds_tempdir(tmp_path, private_tmp, caplog):
    caplog.set_level(logging.DEBUG, logger="jdl.data")
    foreign = private_tmp / "tmpforeign1tfds"
    foreign.mkdir()
    empty = tmp_path / "tfds-data"
    with pytest.raises(jd.DatasetNotPreparedError):
        jd.load("mnist", data_dir=empty)
    assert jd.dataset_info("mnist", data_dir=empty).name == "mnist"
    assert _tfds_tempdirs(private_tmp) == [foreign.name]
    removed = [m for m in caplog.messages if "Removed TFDS' empty temporary directory" in m]
    assert len(removed) >= 2 and all(f"{private_tmp}{os.sep}tmp" in m for m in removed)


def test_no_tfds_tempdirs_removes_only_its_own_empty_ones(private_tmp):
    from tensorflow_datasets.core import dataset_info

    from jdl.data import _cleanup

    outside = []
    with _cleanup.no_tfds_tempdirs():
        empty = Path(dataset_info.tempfile.mkdtemp("tfds"))
        filled = Path(dataset_info.tempfile.mkdtemp("tfds"))
        (filled / "dataset_info.json").write_text("{}")  # TFDS may read it lazily
        direct = Path(tempfile.mkdtemp("tfds"))  # not made by TFDS
        other_thread = threading.Thread(
            target=lambda: outside.append(Path(dataset_info.tempfile.mkdtemp("tfds")))
        )
        other_thread.start()
        other_thread.join()
        assert empty.is_dir()
    assert not empty.exists()
    assert filled.is_dir() and direct.is_dir() and outside[0].is_dir()
    # Outside the block TFDS' tempfile behaves as the real module.
    assert dataset_info.tempfile.gettempdir() == str(private_tmp)
    assert Path(dataset_info.tempfile.mkdtemp("tfds")).is_dir()
