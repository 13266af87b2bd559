"""SIGINT and SIGTERM stop jdl.fit at a step boundary, save, and exit (issue #19).

Each test interrupts a real process (tests/train/interrupt_worker.py) at a random moment
of its training, then checks the exit, the checkpoint of the interrupted step, and that
``resume=True`` to the full length ends bitwise as the uninterrupted run.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import interrupt_worker
import jax
import numpy as np
import pytest

import jdl
from jdl.train import latest_step
from jdl.train.interrupt import StopOnSignal, stopped

WORKER = Path(interrupt_worker.__file__)
PROMPT_S = 20  # from the signal to the process's answer


def _same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read():
        for line in stream:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _next(lines: queue.Queue, timeout: float) -> str | None:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return "<timeout>"


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(WORKER.parent)}
    return subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted():
    return interrupt_worker.fit_run(None)


def _interrupt_runs(tmp_path, runs: int, sig: int) -> tuple[list[int], subprocess.Popen, str]:
    """Start the worker, signal each of its runs at a random moment; the steps they stopped
    after (each answered within PROMPT_S), the process and its stderr."""
    proc = _start(str(WORKER), str(tmp_path), str(runs))
    lines = _lines(proc.stdout)
    rng = random.Random(os.getpid())
    steps = []
    try:
        for k in range(runs):
            assert _next(lines, 120) == f"ready {k}"
            time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(sig)
            sent = time.monotonic()
            if k < runs - 1:
                line = _next(lines, PROMPT_S)
                assert line is not None and line.startswith(f"interrupted {k} "), line
                steps.append(int(line.split()[-1]))
            else:
                proc.wait(timeout=PROMPT_S)
            assert time.monotonic() - sent < PROMPT_S
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read()
    last = re.search(r"stopped by SIG\w+ after step (\d+)", stderr)
    assert last, stderr[-2000:]
    steps.append(int(last.group(1)))
    return steps, proc, stderr


def _check_resumes_exactly(tmp_path, steps, uninterrupted):
    for k, step in enumerate(steps):
        directory = tmp_path / f"run{k}"
        assert 0 < step < interrupt_worker.EPOCHS * 8
        assert latest_step(directory) == step  # saved at the interrupted step
    for k in {0, len(steps) - 1}:  # (each resumption trains most of a run)
        resumed = interrupt_worker.fit_run(tmp_path / f"run{k}", resume=True)
        assert resumed.steps == uninterrupted.steps
        assert resumed.metrics == uninterrupted.metrics
        assert _same(resumed.variables, uninterrupted.variables)


def test_sigint_stops_at_a_step_saves_and_resumes_exactly(tmp_path, uninterrupted):
    # Three runs, each interrupted at a random moment (none may be lost or hang).
    steps, proc, stderr = _interrupt_runs(tmp_path, 3, signal.SIGINT)
    assert proc.returncode in (-signal.SIGINT, 130), (proc.returncode, stderr[-2000:])
    assert "KeyboardInterrupt: training stopped by SIGINT" in stderr  # the exception's
    _check_resumes_exactly(tmp_path, steps, uninterrupted)


def test_sigterm_exits_143_after_saving(tmp_path, uninterrupted):
    steps, proc, stderr = _interrupt_runs(tmp_path, 1, signal.SIGTERM)
    assert proc.returncode == 143, (proc.returncode, stderr[-2000:])
    _check_resumes_exactly(tmp_path, steps, uninterrupted)


def test_on_sigterm_return_ends_fit_normally_with_a_checkpoint_and_resumes_exactly(
    tmp_path, uninterrupted
):
    proc = _start(str(WORKER), str(tmp_path), "1", "return")
    lines = _lines(proc.stdout)
    try:
        assert _next(lines, 120) == "ready 0"
        time.sleep(random.Random(os.getpid()).uniform(0.0, 1.5))
        proc.send_signal(signal.SIGTERM)
        line = _next(lines, PROMPT_S)
        proc.wait(timeout=PROMPT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert line is not None and line.startswith("preempted 0 "), (line, stderr[-2000:])
    assert proc.returncode == 0, stderr[-2000:]  # fit returned: the script ends normally
    _check_resumes_exactly(tmp_path, [int(line.split()[-1])], uninterrupted)
    with pytest.raises(ValueError, match='on_sigterm must be "exit" or "return"'):
        interrupt_worker.fit_run(None, on_sigterm="ignore")


def test_cli_exits_143_on_sigterm_and_names_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = _start(
        "-m", "jdl", "train", "--dataset", "iris", "--model", "mlp", "--steps", "100000",
        "--batch-size", "16", "--checkpoint-every", "1", "--quiet", "--out", str(out),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while latest_step(out / "checkpoints") is None:  # training is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=PROMPT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert proc.returncode == 143, stderr[-2000:]
    [line] = [x for x in stderr.splitlines() if "stopped by SIGTERM" in x]
    step = int(re.search(r"after step (\d+)", line).group(1))
    assert f"checkpoint of step {step} in {out / 'checkpoints'}" in line
    assert "--resume" in line and latest_step(out / "checkpoints") == step


def test_cli_exits_130_on_sigint(tmp_path, monkeypatch, capsys):
    from jdl.__main__ import main

    def interrupted(*args, **kwargs):
        raise stopped(signal.SIGINT, 7, {str(tmp_path / "run" / "checkpoints"): 7})

    monkeypatch.setattr(jdl, "fit", interrupted)
    argv = ["train", "--dataset", "iris", "--model", "mlp", "--steps", "10"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.splitlines()  # (and maybe the dataset's preparation)
    assert [line for line in err if "stopped by" in line] == [
        f"training stopped by SIGINT after step 7: checkpoint of step 7 in "
        f"{tmp_path / 'run' / 'checkpoints'}; {tmp_path / 'run'} holds config.json, "
        f"history.json (0 epochs); continue with --resume --out {tmp_path / 'run'}"
    ]


def test_handlers_are_restored_and_a_second_signal_acts_at_once():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopOnSignal() as signals:
        assert signal.getsignal(signal.SIGINT) != before[signal.SIGINT]
        signal.raise_signal(signal.SIGINT)  # noted, not raised
        assert signals.received == signal.SIGINT
        # The previous handlers are back: a second Ctrl-C raises at once.
        assert {s: signal.getsignal(s) for s in before} == before
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="after step 3: no Checkpoint") as info:
            signals.raise_if_received(3, [])
        assert type(info.value) is KeyboardInterrupt and info.value.step == 3
    with pytest.raises(ValueError), StopOnSignal():
        raise ValueError("an error inside")  # handlers restored on exceptions too
    assert {s: signal.getsignal(s) for s in before} == before
    err = stopped(signal.SIGTERM, 5, {"ck": None})
    assert type(err) is SystemExit and err.code == 143 and "no checkpoint in ck" in err.message


def test_a_multi_process_run_keeps_pythons_own_handlers(monkeypatch):
    """One process stopping alone would wait for its peers: signals act as without fit."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopOnSignal() as signals:
        assert {s: signal.getsignal(s) for s in before} == before
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signals.received is None
