"""Checkpoint directories stay what the user gave: ``gs://…`` reaches Orbax as a remote
``etils.epath.Path`` (``pathlib`` would make it the local path ``gs:/…``), and local
paths work as before (issue #12).

No network: Orbax's ``CheckpointManager`` is replaced by a recorder, and the remote
listing, renaming and existence checks go through ``etils.epath.testing.mock_epath``, which
maps ``gs://bucket/…`` onto a temporary local directory.
"""

from __future__ import annotations

import contextlib
import pathlib

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from etils import epath
from etils.epath import testing as epath_testing

from jdl.nn import MLP
from jdl.train import (
    BestCheckpoint,
    Checkpoint,
    create_state,
    latest_step,
    restore_state,
    save_state,
)
from jdl.train.checkpoint import set_aside
from jdl.train.checkpoint_paths import checkpoint_path, is_remote

X = np.zeros((2, 5), np.float32)
URL = "gs://bucket/runs/a"


def _state(step=0):
    return create_state(MLP(widths=(8,), num_outputs=3), optax.adam(1e-3), X, 0).replace(step=step)


class _Recorder:
    """Stands in for ``ocp.CheckpointManager``: records its directory, saves nothing."""

    directories: list = []

    def __init__(self, directory, *args, **kwargs):
        type(self).directories.append(directory)
        self.saved = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def save(self, step, *args, **kwargs):
        self.saved.append(step)

    def wait_until_finished(self):
        pass

    def all_steps(self):
        return []


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(_Recorder, "directories", [])
    monkeypatch.setattr(ocp, "CheckpointManager", _Recorder)
    return _Recorder


@contextlib.contextmanager
def bucket(root: pathlib.Path):
    """``gs://bucket/…`` read and written in ``root/…`` (every epath operation used here)."""

    def local(path) -> str:
        text = str(path)
        return str(root / text.removeprefix("gs://bucket/")) if text.startswith("gs://") else text

    def one(original, path, *args, **kwargs):
        return original(local(path), *args, **kwargs)

    def two(original, path, dst, *args, **kwargs):
        return original(local(path), local(dst), *args, **kwargs)

    with epath_testing.mock_epath(
        exists=one, isdir=one, listdir=one, makedirs=one, mkdir=one, rename=two
    ):
        yield


def test_save_state_hands_orbax_the_gs_url_unchanged(recorder):
    save_state(URL, _state(step=3))
    (directory,) = recorder.directories
    assert isinstance(directory, epath.Path)
    assert str(directory) == URL  # not /cwd/gs:/bucket/runs/a


def test_restore_state_checks_and_opens_the_remote_directory(recorder, tmp_path):
    with bucket(tmp_path):
        assert restore_state(URL, _state()) is None  # no such directory in the bucket
        assert recorder.directories == []  # so Orbax was not asked
        (tmp_path / "runs" / "a").mkdir(parents=True)
        assert restore_state(URL, _state()) is None  # exists, but the manager holds no step
    assert [str(d) for d in recorder.directories] == [URL]


def test_latest_step_lists_a_remote_directory(tmp_path):
    for name in ("2", "10", "7.orbax-checkpoint-tmp-1", "3.corrupt"):
        (tmp_path / "runs" / "a" / name).mkdir(parents=True)
    with bucket(tmp_path):
        assert latest_step(URL) == 10
        assert latest_step("gs://bucket/runs/none") is None


def test_set_aside_renames_inside_the_remote_directory(tmp_path):
    (tmp_path / "runs" / "a" / "4").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "4.corrupt").mkdir()
    with bucket(tmp_path):
        (moved,) = set_aside(URL, [4, 9])
    assert str(moved) == f"{URL}/4.corrupt-2"
    assert sorted(p.name for p in (tmp_path / "runs" / "a").iterdir()) == [
        "4.corrupt",
        "4.corrupt-2",
    ]


def test_callbacks_keep_a_remote_directory_remote():
    for callback in (Checkpoint(URL), BestCheckpoint(URL + "-best")):
        assert isinstance(callback.directory, epath.Path)
        assert str(callback.directory).startswith("gs://bucket/runs/a")
        assert is_remote(callback.directory)


def test_a_url_collapsed_by_pathlib_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"pathlib collapsed.*'gs://bucket/runs/a'"):
        Checkpoint(pathlib.Path(URL))
    with pytest.raises(ValueError, match="pass the URL as a string"):
        save_state(pathlib.Path(URL), _state())


def test_a_directory_that_is_no_path_is_refused():
    with pytest.raises(TypeError, match="string or path; got int 3"):
        Checkpoint(3)


def test_local_paths_stay_local_and_relative_ones_reach_orbax_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_remote("runs/a") and not is_remote(tmp_path)
    assert checkpoint_path(pathlib.Path("runs/a")) == pathlib.Path("runs/a")
    opened = []
    real = ocp.CheckpointManager

    def recording(directory, *args, **kwargs):
        opened.append(directory)
        return real(directory, *args, **kwargs)

    monkeypatch.setattr(ocp, "CheckpointManager", recording)
    state = _state(step=5)
    save_state("runs/a", state)
    assert [str(d) for d in opened] == [str(tmp_path / "runs" / "a")]
    assert latest_step("runs/a") == latest_step(tmp_path / "runs" / "a") == 5
    restored, _ = restore_state(pathlib.Path("runs/a"), _state())
    assert int(restored.step) == 5
    for got, want in zip(
        jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True
    ):
        np.testing.assert_array_equal(got, want)
