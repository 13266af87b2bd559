"""``python -m jdl train --distributed``: join the job's other processes, and agree with them.

:func:`join` calls ``jax.distributed.initialize()`` before anything else uses JAX (the
command's heavy imports follow it): with no cluster options JAX detects the job itself
(SLURM, Open MPI, Kubernetes, Cloud TPU); ``--coordinator``, ``--num-processes`` and
``--process-id`` override what it detects. On the CPU the processes' collectives run over
gloo.

After that every process runs the same command, and each decision that could differ
between them (the time-stamped run directory's name, a check of the filesystem) is taken
once for all with :func:`gather_text`: process 0's run directory is everyone's, and if any
process refuses the run every process does, so none waits forever for the others.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

#: How long process 0 waits for the others to connect, and they for it (seconds).
INIT_TIMEOUT_S = 300


def join(args: argparse.Namespace) -> str | None:
    """Join the cluster if ``args.distributed``; what went wrong, if anything.

    Args:
        args: the parsed ``train`` arguments (``distributed``, ``coordinator``,
            ``num_processes``, ``process_id``).

    Returns:
        ``None`` when joined (or not asked to), else the message: no cluster was detected
        and no coordinator given, or ``jax.distributed.initialize`` failed.
    """
    if not args.distributed:
        return None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # no-op off the CPU
    try:
        jax.distributed.initialize(
            args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=INIT_TIMEOUT_S,
        )
    except (ValueError, RuntimeError) as err:  # JAX's errors for no cluster / no peers
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        detected = args.coordinator is None and "coordinator" in reason.lower()
        if detected:
            return (
                "--distributed: no cluster was detected (SLURM, Open MPI, Kubernetes and "
                "Cloud TPU jobs are) and no --coordinator was given "
                f"(jax.distributed.initialize: {reason}). Run the command under srun / "
                "mpirun / the job's launcher, or give --coordinator HOST:PORT "
                "--num-processes N --process-id I on every process."
            )
        return f"--distributed: jax.distributed.initialize failed: {reason}"
    return None


def is_primary() -> bool:
    """Whether this is process 0, the one that writes the run directory and prints."""
    return jax.process_index() == 0


def gather_text(text: str) -> list[str]:
    """Every process's ``text``, in process order (a collective: every process calls it).

    In a single-process run, ``[text]`` without touching a device.

    Args:
        text: this process's text.

    Returns:
        The texts of processes 0, 1, ...
    """
    if jax.process_count() == 1:
        return [text]
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
    padded = np.zeros(max(int(lengths.max()), 1), np.uint8)
    padded[: data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
    return [bytes(row[:n]).decode() for row, n in zip(rows, lengths, strict=True)]


def agree(problem: str | None) -> str | None:
    """The first problem of any process (a collective: every process calls it).

    Args:
        problem: why this process cannot go on (``None``: it can).

    Returns:
        ``None`` if no process has a problem, else the first one, naming its process when
        it is not process 0's own.
    """
    texts = gather_text(problem or "")
    for index, text in enumerate(texts):
        if text:
            return text if index == 0 else f"process {index}: {text}"
    return None
