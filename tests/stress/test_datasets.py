"""Dataset preparation under stress: three processes preparing one cache at once (one
prepares, the others wait and reuse it), and preparations SIGKILLed at several moments
(the next one cleans up what they left and succeeds)."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jdl.data as jd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_interrupted_prepare import (  # noqa: E402  (tests/data's child and checks)
    _kill,
    _leftovers,
    _removed_messages,
    _start_paused_preparation,
)

pytestmark = pytest.mark.stress

WORKER = Path(__file__).with_name("_workers.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _start(*args: str, log: Path, stdin=None) -> subprocess.Popen:
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, str(WORKER), "prepare", *args], stdin=stdin,
            stdout=subprocess.PIPE, stderr=stderr, env=ENV, text=True,
        )  # fmt: skip


def _wait_for(proc: subprocess.Popen, word: str, log: Path) -> None:
    for line in proc.stdout:
        if line.strip() == word:
            return
    pytest.fail(f"the child never said {word!r}; its stderr:\n{log.read_text()[-3000:]}")


def test_three_processes_preparing_one_cache_at_once(tmp_path, figures):
    root = tmp_path / "cache"
    logs = [tmp_path / f"child{i}.log" for i in range(3)]
    procs = [_start("mnist1d", str(root), "wait", log=log, stdin=subprocess.PIPE) for log in logs]
    try:
        for proc, log in zip(procs, logs, strict=True):
            _wait_for(proc, "started", log)  # imported, waiting for the start signal
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log.read_text()[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert [r["len"] for r in results] == [4000] * 3
    assert sum(r["prepared_here"] for r in results) == 1, results  # prepared once
    assert not any("Downloading and preparing" in out for out in outputs)  # TFDS' line: gone
    assert sum("jdl: preparing dataset 'mnist1d'" in log.read_text() for log in logs) == 1
    assert all(r["first"] == results[0]["first"] for r in results)  # the same data
    assert [p.name for p in (root / "jdl_mnist1d").iterdir()] == ["1.0.0"]
    assert not list(root.glob(".downloads-*")) and not list(root.glob("jdl_mnist1d/incomplete.*"))
    assert len(jd.load("mnist1d", data_dir=root)) == 4000  # valid for a later load too
    t0 = min(r["start"] for r in results)
    figures(
        "3 processes preparing mnist1d into one fresh cache: all succeeded, prepared once; "
        + ", ".join(
            f"{'prepared' if r['prepared_here'] else 'waited'} {r['start'] - t0:.2f}->"
            f"{r['end'] - t0:.2f} s"
            for r in sorted(results, key=lambda r: r["end"])
        )
    )


KILLS = 5  # at random moments, after the paused one of tests/data


def test_preparations_killed_at_several_moments_are_cleaned_by_the_next(tmp_path, figures, caplog):
    caplog.set_level(logging.INFO, logger="jdl.data")
    reference = jd.load("coffee", "train")  # the session's cache
    root = tmp_path / "cache"
    root.mkdir()
    rng = random.Random(5)
    left = []
    # 1: paused after 5 examples of its train split (tests/data's child)
    _kill(_start_paused_preparation(root, tmp_path / "paused.log"))
    left.append(f"paused after 5 examples: {len(_leftovers(root))} leftovers")
    # 2...: at random moments of a preparation slowed to 2 ms per example (~1.5 s), the
    # k-th in the k-th fifth of it: from before its first file to its last
    for k in range(KILLS):
        log = tmp_path / f"killed{k}.log"
        proc = _start("coffee", str(root), "0.002", log=log)
        _wait_for(proc, "started", log)
        delay = rng.uniform(k, k + 1) * 1.5 / KILLS
        time.sleep(delay)
        finished = proc.poll() is not None
        _kill(proc)
        if finished or (root / "jdl_coffee" / "1.0.0").exists():
            left.append(f"{delay:.2f} s: finished before the kill")
            break
        left.append(f"{delay:.2f} s: {len(_leftovers(root))} leftovers")
        assert len(_leftovers(root)) <= 2, _leftovers(root)  # only the last kill's
    source = jd.load("coffee", "train", data_dir=root)
    assert len(source) == len(reference) == 512
    for i in (0, 200, 511):
        assert all(np.array_equal(source[i][k], reference[i][k]) for k in ("x", "y"))
    assert _leftovers(root) == [] and [p.name for p in (root / "jdl_coffee").iterdir()] == ["1.0.0"]
    killed = sum("leftovers" in x for x in left)
    assert killed >= 4, left
    removed = _removed_messages(caplog).count("left by an interrupted preparation")
    figures(
        f"{killed} preparations of coffee SIGKILLed ({'; '.join(left)}); each next one "
        f"removed the previous one's leftovers on taking the lock (the last {removed}: the "
        f"final load), which prepared it identical to the reference"
    )
