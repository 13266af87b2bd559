"""Start local ``jax.distributed`` clusters for the multi-process tests: N copies of a
worker script, each with its own simulated CPU devices, joined over ``127.0.0.1``.

A worker is run as ``python SCRIPT PROCESS_ID NUM_PROCESSES PORT *ARGS`` and joins with
:func:`join` (gloo CPU collectives).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(local_devices: int) -> dict[str, str]:
    """This environment with ``local_devices`` simulated CPU devices per process."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={local_devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_NUM_CPU_DEVICES", None)
    return env


def start(
    script: str, num_processes: int, args: list[str], out: Path, local_devices: int = 2
) -> tuple[list[subprocess.Popen], list[Path]]:
    """Start the workers (output to ``out/process_<i>.log``); their processes and logs."""
    port = free_port()
    procs, logs = [], []
    for i in range(num_processes):
        log = out / f"process_{i}.log"
        logs.append(log)
        with open(log, "w") as f:
            procs.append(
                subprocess.Popen(
                    [sys.executable, script, str(i), str(num_processes), str(port), *args],
                    cwd=Path(script).parent,
                    env=worker_env(local_devices),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    return procs, logs


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout_s: float) -> None:
    """Wait for every worker to exit 0 within ``timeout_s`` (all together); otherwise fail
    the test with the failing worker's log (the workers still running are killed by
    :func:`stop`, which the caller runs in a ``finally``)."""
    import pytest

    deadline = time.monotonic() + timeout_s
    for i, proc in enumerate(procs):
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {i} still running after {timeout_s} s:\n{tail(logs[i])}")
        if code != 0:
            pytest.fail(f"worker {i} exited with {code}:\n{tail(logs[i])}")


def stop(procs: list[subprocess.Popen]) -> None:
    """Kill the workers still running."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tail(path: Path, n: int = 3000) -> str:
    """The end of a worker's log."""
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no output)"


def join(process_id: int, num_processes: int, port: int) -> None:
    """Join the cluster on 127.0.0.1:``port`` (in a worker, before anything uses JAX)."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
