"""The persistent compilation cache: ``fit(compile_cache=DIR)``, ``sweep(compile_cache=DIR)``,
``jdl.train.enable_compile_cache`` and ``jdl train --compile-cache`` (issue #13).

JAX opens its cache once per process, so everything that turns it on runs in a fresh
subprocess: this test process keeps compiling without one. Cache use is counted with
jax.monitoring's ``/jax/compilation_cache/cache_hits`` / ``cache_misses`` events (a miss
is a program compiled and written to the directory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import pytest

import jdl
from jdl._cli.parser import build_parser
from jdl._cli.train import _compile_cache

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np

    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    import jdl

    mode, directory = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int32)
    model = jdl.nn.MLP(widths=(8,), num_outputs=3)
    common = dict(batch_size=16, loss="cross_entropy", epochs=2, verbose=0,
                  validation=(x[:32], y[:32]), compile_cache=directory)
    error = None
    if mode == "fit":
        jdl.fit(model, (x, y), optimizer=("adam", 1e-2), **common)
    elif mode == "sweep":
        jdl.train.sweep(model, (x, y), optimizer="adam", learning_rates=[0.01, 0.1], **common)
    elif mode == "second_directory":
        jdl.fit(model, (x, y), optimizer=("adam", 1e-2), **common)
        jdl.fit(model, (x, y), optimizer=("adam", 1e-2), **common)  # the same: fine
        try:
            jdl.fit(model, (x, y), optimizer=("adam", 1e-2), **{**common,
                    "compile_cache": directory + "_other"})
        except ValueError as err:
            error = str(err)
    print(json.dumps({
        "hits": events.count("/jax/compilation_cache/cache_hits"),
        "misses": events.count("/jax/compilation_cache/cache_misses"),
        "error": error,
        "dir": str(jdl.train.compile_cache_dir()),
    }))
    """
)


def _worker(mode: str, directory) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(directory)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(directory) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


@pytest.mark.parametrize("mode", ["fit", "sweep"])
def test_a_second_process_loads_the_compiled_programs(tmp_path, mode):
    directory = tmp_path / "cache"  # created by the first run
    first = _worker(mode, directory)
    written = _entries(directory)
    assert first["hits"] == 0 and first["misses"] > 0
    assert len(written) >= first["misses"]  # each compiled program got an entry
    assert first["dir"] == str(directory)
    second = _worker(mode, directory)
    # Every program the first process compiled is loaded, none is compiled again.
    assert second["hits"] == first["misses"]
    assert second["misses"] == 0
    assert _entries(directory) == written


def test_one_process_keeps_one_directory(tmp_path):
    result = _worker("second_directory", tmp_path / "a")
    assert result["error"] is not None
    assert str(tmp_path / "a") in result["error"] and "a_other" in result["error"]
    assert "once per process" in result["error"]
    assert result["misses"] > 0  # the first fit filled the directory
    assert not (tmp_path / "a_other").exists()


def test_bad_directories_and_settings_are_refused_before_any_change(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        jdl.train.enable_compile_cache(a_file)
    with pytest.raises(ValueError, match=r"min_compile_time must be .*>= 0; got -1"):
        jdl.train.enable_compile_cache(tmp_path / "c", min_compile_time=-1)
    assert not (tmp_path / "c").exists()
    assert jdl.train.compile_cache_dir() is None  # this process still has no cache


def test_cli_flag_beats_the_environment_variable(monkeypatch):
    parser = build_parser()
    args = parser.parse_args(["train", "--compile-cache", "/tmp/x"])
    monkeypatch.setenv("JDL_COMPILE_CACHE", "/tmp/from_env")
    assert _compile_cache(args) == "/tmp/x"
    assert _compile_cache(parser.parse_args(["train"])) == "/tmp/from_env"
    monkeypatch.setenv("JDL_COMPILE_CACHE", "")
    assert _compile_cache(argparse.Namespace(compile_cache=None)) is None


def test_cli_run_with_the_environment_variable_fills_the_cache(tmp_path):
    directory = tmp_path / "cache"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JDL_COMPILE_CACHE": str(directory)}
    argv = ["train", "--model", "mlp", "--dataset", "iris", "--steps", "4", "--batch-size", "16",
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jdl", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_entries(directory)) > 0
