"""Ctrl-C and SIGTERM at any moment of `python -m jdl train` (issue #18): importing,
compiling, mid-epoch, during a checkpoint save, while writing the curves at the end.

Each test starts a real `python -m jdl train` (MNIST-1D's MLP, 360 steps an epoch), waits
for the moment from the process's output or its run directory, sends the signal, and
checks: exit status 130 (143 for SIGTERM), no traceback or crash, one line saying where it
stopped and what the run directory holds, and config.json and history.json (the epochs so
far) in the directory as valid JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import jdl
from jdl._cli.signals import DeferSignals, Stopped, exit_status

DEADLINE_S = 120


@pytest.fixture(scope="module", autouse=True)
def prepared_mnist1d():
    """MNIST-1D prepared in the session's $JDL_DATA_DIR, so the processes only read it."""
    jdl.data.load("mnist1d", split="train")


class Train:
    """A `python -m jdl train` process whose output is read as it comes."""

    def __init__(self, out: Path, *python_flags: str, epochs: int = 4) -> None:
        self.out, self.epochs = out, epochs
        argv = [
            sys.executable, *python_flags, "-m", "jdl", "train", "--dataset", "mnist1d",
            "--model", "mlp", "--epochs", str(epochs), "--batch-size", "10",
            "--checkpoint-every", "1", "--verbose", "2", "--out", str(out),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(s, lines), daemon=True)
            for s, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def wait_for(self, moment: Callable[[], bool], poll_s: float = 0.002) -> None:
        """Wait until ``moment()`` is true; fail if the process ends first."""
        deadline = time.monotonic() + DEADLINE_S
        while not moment():
            assert self.proc.poll() is None, "the run ended before the moment:\n" + self.err
            assert time.monotonic() < deadline, "the moment never came:\n" + self.err
            time.sleep(poll_s)

    def stop(self, sig: int) -> int:
        """Send ``sig``; the exit status."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=DEADLINE_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self._threads:
            t.join(timeout=10)
        return code

    @property
    def err(self) -> str:
        return "".join(line for line in self.stderr if "import time:" not in line)

    def epochs_written(self) -> int:
        try:
            return len(json.loads((self.out / "history.json").read_text())["epochs"])
        except (OSError, ValueError):
            return 0


def _check_stopped(run: Train, code: int, expected: int, sig_name: str) -> str:
    """The checks every interrupted run must pass; the one line it printed."""
    err = run.err
    assert code == expected, err[-3000:]
    assert "Traceback" not in err and "Segmentation" not in err, err[-3000:]
    [line] = [x for x in err.splitlines() if f"stopped by {sig_name}" in x or "stopped at" in x]
    assert f"{run.out} holds config.json" in line
    config = json.loads((run.out / "config.json").read_text())
    assert config["model"] == "mlp" and config["epochs"] == run.epochs
    history = json.loads((run.out / "history.json").read_text())
    epochs = len(history["epochs"])
    assert f"history.json ({epochs} epoch" in line
    assert history["epochs"] == list(range(1, epochs + 1))
    return line


def _imported(line: str) -> str:
    """The module an ``-X importtime`` line names ("" for other lines)."""
    return line.rsplit("|", 1)[1].strip() if line.startswith("import time:") else ""


def test_sigint_while_importing(tmp_path):
    run = Train(tmp_path / "run", "-X", "importtime")
    run.wait_for(lambda: any(_imported(line).startswith("jax._src") for line in run.stderr))
    line = _check_stopped(run, run.stop(signal.SIGINT), 130, "SIGINT")
    assert "stopped by SIGINT before training" in line and "history.json (0 epochs)" in line
    # What it left may be reused: the same command starts afresh (not "not empty").
    assert sorted(p.name for p in run.out.iterdir()) == ["config.json", "history.json"]


def test_sigint_while_compiling(tmp_path):
    run = Train(tmp_path / "run")
    run.wait_for(lambda: any(line.startswith("Training mlp") for line in run.stdout))
    line = _check_stopped(run, run.stop(signal.SIGINT), 130, "SIGINT")
    # Before the first step (building the state), or at the first step boundary (the step's
    # compilation is inside fit's loop, which stops at the next boundary).
    assert "before" in line or "after step" in line, line


def test_sigint_mid_epoch_keeps_the_epochs_so_far(tmp_path):
    run = Train(tmp_path / "run")
    run.wait_for(lambda: run.epochs_written() >= 1, poll_s=0.01)
    line = _check_stopped(run, run.stop(signal.SIGINT), 130, "SIGINT")
    assert "training stopped by SIGINT after step" in line and "continue with --resume" in line
    step = int(line.split("after step ")[1].split(":")[0])
    assert f"checkpoints/ (step {step})" in line
    assert run.epochs_written() == step // 360 >= 1  # 3,600 examples after validation


def test_sigint_during_a_checkpoint_save(tmp_path):
    run = Train(tmp_path / "run")
    ckpt = run.out / "checkpoints"
    run.wait_for(lambda: ckpt.is_dir() and any("tmp" in p.name for p in ckpt.iterdir()), 0.001)
    line = _check_stopped(run, run.stop(signal.SIGINT), 130, "SIGINT")
    assert "training stopped by SIGINT after step" in line
    assert "Orbax" not in run.err and "orbax" not in run.err.lower().replace(line.lower(), "")


def test_sigint_while_writing_the_curves(tmp_path):
    run = Train(tmp_path / "run", epochs=2)
    run.wait_for(lambda: (run.out / "results.json").exists())
    line = _check_stopped(run, run.stop(signal.SIGINT), 130, "SIGINT")
    assert "stopped by SIGINT after training (step 720)" in line  # 2 x 360 steps
    assert "history.json (2 epochs)" in line and "results.json" in line


def test_sigterm_mid_epoch_exits_143(tmp_path):
    run = Train(tmp_path / "run")
    run.wait_for(lambda: run.epochs_written() >= 1, poll_s=0.01)
    line = _check_stopped(run, run.stop(signal.SIGTERM), 143, "SIGTERM")
    assert "training stopped by SIGTERM after step" in line


def test_a_second_sigint_stops_at_once_without_a_crash(tmp_path):
    run = Train(tmp_path / "run", "-X", "importtime")
    run.wait_for(lambda: any(_imported(line).startswith("jax._src") for line in run.stderr))
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    code = run.stop(signal.SIGINT)
    assert code == 130, run.err[-3000:]
    assert "Traceback" not in run.err and "Segmentation" not in run.err, run.err[-3000:]
    assert "stopped at once by a second SIGINT: nothing written" in run.err


def test_a_signal_is_noted_and_raised_at_the_next_safe_point():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with DeferSignals() as signals:
        signals.check("nowhere")  # nothing noted: no-op
        signal.raise_signal(signal.SIGTERM)  # noted, not raised
        assert signals.received == signal.SIGTERM
        with pytest.raises(Stopped, match="^stopped by SIGTERM before training$") as info:
            signals.check("before training")
        assert info.value.signum == signal.SIGTERM and exit_status(info.value.signum) == 143
    assert {s: signal.getsignal(s) for s in before} == before
