"""``python -m jdl train --distributed``: several processes, one run, one run directory.

Two processes of the real command (each with 2 simulated CPU devices, joined over
``127.0.0.1`` with gloo) train iris into the run directory process 0 names; process 0 alone
writes its files and prints, and the results equal a single-process run's. Without a
cluster to join, ``--distributed`` fails at once with exit status 2 and says why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jdl
from jdl.__main__ import main
from jdl.train.progress import Progress

_spec = importlib.util.spec_from_file_location(
    "cluster_harness", Path(__file__).parent / "train" / "cluster_harness.py"
)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

IRIS = ["train", "--dataset", "iris", "--model", "mlp", "--steps", "20"]
TIMEOUT_S = 420  # the whole cluster run; ~15 s on an idle 2-core machine
#: Environment variables by which jax.distributed detects a cluster (SLURM, Open MPI,
#: mpi4py, Kubernetes, Cloud TPU); removed for the run that must find none.
CLUSTER_ENV = ("SLURM_", "OMPI_", "PMI_", "KUBERNETES_", "TPU_", "CLOUD_TPU", "MEGASCALE_")


def _launch(cwds: list[Path], args: list[str]) -> tuple[list[subprocess.Popen], list]:
    """Start ``python -m jdl train --distributed`` as processes 0, 1, ... in ``cwds``."""
    port = harness.free_port()
    procs, logs = [], []
    for i, cwd in enumerate(cwds):
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(len(cwds))]
        command = [sys.executable, "-m", "jdl", *IRIS, *args, "--distributed", *flags]
        logs.append((cwd / f"out_{i}.log", cwd / f"err_{i}.log"))
        with open(logs[i][0], "w") as out, open(logs[i][1], "w") as err:
            procs.append(
                subprocess.Popen(
                    [*command, "--process-id", str(i)],
                    cwd=cwd,
                    env=harness.worker_env(2),
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                )
            )
    return procs, logs


def _wait(procs: list[subprocess.Popen], logs: list) -> list[int]:
    """The processes' exit codes (failing the test if they outlast :data:`TIMEOUT_S`)."""
    deadline = time.monotonic() + TIMEOUT_S
    codes = []
    for i, proc in enumerate(procs):
        try:
            codes.append(proc.wait(timeout=max(deadline - time.monotonic(), 1)))
        except subprocess.TimeoutExpired:
            log = harness.tail(logs[i][1])
            pytest.fail(f"process {i} still runs after {TIMEOUT_S} s:\n{log}")
    return codes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Run the 2-process command (the 1-process reference meanwhile); its folders and logs."""
    jdl.data.load("iris", split="train")  # prepared once, before the processes read it
    work = tmp_path_factory.mktemp("cluster")
    procs, logs = _launch([work, work], [])  # no --out: process 0 names runs/iris-mlp-<time>
    try:
        reference = work / "reference"
        assert main([*IRIS, "--out", str(reference)]) == 0
        codes = _wait(procs, logs)
    finally:
        harness.stop(procs)
    return work, reference, codes, logs


def test_both_processes_exit_0_into_one_run_directory(cluster):
    work, _, codes, logs = cluster
    assert codes == [0, 0], [harness.tail(err) for _, err in logs]
    runs = list((work / "runs").iterdir())
    assert len(runs) == 1, runs  # process 0's name, used by both
    names = {p.name for p in runs[0].iterdir()}
    for name in ("config.json", "history.json", "history.csv", "results.json", "model"):
        assert name in names, names
    assert not any(name.startswith(".") for name in names)  # no temporary file left over
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["processes"] == 2 and len(config["devices"]) == 4
    assert jdl.train.latest_step(runs[0] / "checkpoints") == 20


def test_only_process_0_prints(cluster):
    _, _, _, logs = cluster
    (out0, err0), (out1, err1) = [(o.read_text(), e.read_text()) for o, e in logs]
    assert "epoch 1/20" in err0 and "epoch 20/20" in err0
    assert "epoch" not in err1 and "error" not in err1.lower()
    assert "Training mlp on iris" in out0 and "wrote runs/" in out0
    # gloo's own connection lines (from C++, on stdout) aside, process 1 prints nothing
    # (gloo's threads write unsynchronised: its lines may run into each other)
    assert re.sub(r"\[Gloo\] Rank \d+ is connected to [^\n\[]*", "", out1).strip() == "", out1


def test_results_equal_a_single_process_run(cluster):
    work, reference, _, _ = cluster
    (run,) = (work / "runs").iterdir()
    got = json.loads((run / "results.json").read_text())
    want = json.loads((reference / "results.json").read_text())
    assert got["steps"] == want["steps"] == 20
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(got["test"][key], want["test"][key], rtol=1e-4, atol=1e-5)
    history = json.loads((run / "history.json").read_text())
    expected = json.loads((reference / "history.json").read_text())
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(
            history["metrics"][key], expected["metrics"][key], rtol=1e-4, atol=1e-5, err_msg=key
        )


def test_distributed_without_a_cluster_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLUSTER_ENV)}
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "jdl", *IRIS, "--distributed", "--out", "run"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert "--distributed: no cluster was detected" in done.stderr
    assert "--coordinator HOST:PORT --num-processes N --process-id I" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_directory_not_shared_by_every_process_fails_clearly(tmp_path):
    jdl.data.load("iris", split="train")
    cwds = [tmp_path / "host0", tmp_path / "host1"]  # "--out run": another folder for each
    for cwd in cwds:
        cwd.mkdir()
    procs, logs = _launch(cwds, ["--out", "run"])
    try:
        codes = _wait(procs, logs)
    finally:
        harness.stop(procs)
    err0, err1 = (e.read_text() for _, e in logs)
    assert codes == [2, 2], (err0[-3000:], err1[-3000:])
    assert "is not shared by all processes: process(es) 1 of 2" in err0
    assert "Traceback" not in err0 + err1
    assert not (cwds[1] / "run" / "config.json").exists()  # process 1 wrote nothing


def test_a_refusal_on_one_process_stops_every_process(tmp_path):
    jdl.data.load("iris", split="train")
    cwds = [tmp_path / "host0", tmp_path / "host1"]
    (cwds[0] / "run" / "checkpoints").mkdir(parents=True)  # process 1 sees no checkpoints
    cwds[1].mkdir()
    procs, logs = _launch(cwds, ["--out", "run", "--resume"])
    try:
        codes = _wait(procs, logs)
    finally:
        harness.stop(procs)
    err0, err1 = (e.read_text() for _, e in logs)
    assert codes == [2, 2], (err0[-3000:], err1[-3000:])
    assert "error: process 1: --resume: no checkpoints in run/checkpoints" in err0
    assert "error" not in err1.lower()  # process 0 speaks for the job
    assert sorted(p.name for p in (cwds[0] / "run").iterdir()) == ["checkpoints"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--coordinator", "10.0.0.1:1234"], "--coordinator given without --distributed"),
        (["--distributed", "--coordinator", "10.0.0.1"], "expected HOST:PORT"),
        (["--distributed", "--coordinator", "h:99999"], "got 'h:99999'"),
        (["--distributed", "--num-processes", "0"], "--num-processes must be a positive"),
        (["--distributed", "--num-processes", "2", "--process-id", "2"], "must be in 0..1"),
        (["--distributed", "--process-id", "-1"], "--process-id must be in 0..N-1"),
    ],
)
def test_bad_cluster_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*IRIS, *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_strategy_choices_are_the_library_strategies():
    from jdl._cli.parser import STRATEGIES

    assert STRATEGIES == jdl.train.STRATEGIES  # --strategy fsdp included


def test_progress_is_silent_on_processes_other_than_0(monkeypatch, capsys):
    import jax

    monkeypatch.setattr(jax, "process_index", lambda: 1)
    progress = Progress(2, total_steps=10)
    progress.start_epoch("epoch 1/1")
    assert progress.end_epoch({"loss": 0.5}) is None
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    progress = Progress(2, total_steps=10)
    progress.start_epoch("epoch 1/1")
    assert progress.end_epoch({"loss": 0.5}) == capsys.readouterr().err.strip()
