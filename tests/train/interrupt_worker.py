"""A ``jdl.fit`` run for tests/train/test_interrupt.py to interrupt with a signal.

``python interrupt_worker.py DIR RUNS`` trains ``RUNS`` runs one after another, each with
a ``Checkpoint`` in ``DIR/run<k>``, printing ``ready <k>`` once training is under way. A
run stopped by a signal prints ``interrupted <k> <step>`` and the next one starts; the last
one's exception is not caught (the process's exit status is checked). A run that ends
without being stopped prints ``completed <k>``: a signal was lost.

``python interrupt_worker.py DIR RUNS return`` trains with ``fit(..., on_sigterm="return")``:
a run that SIGTERM ends prints ``preempted <k> <step>`` and the process exits 0.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optax
from conftest import TinyMLP, blobs

import jdl
from jdl.train import Checkpoint
from jdl.train.callbacks import Callback

EPOCHS = 40  # 8 steps each


class Pace(Callback):
    """Says when training is under way, and slows it down so a signal lands inside it."""

    def __init__(self, k: int):
        self.k, self.told = k, False

    def on_metrics(self, run, first_step, metrics):
        if not self.told:
            print(f"ready {self.k}", flush=True)
            self.told = True
        time.sleep(0.01)


def fit_run(
    directory: Path | None,
    *,
    resume: bool = False,
    pace: Pace | None = None,
    on_sigterm: str = "exit",
):
    """The run, with a checkpoint every 5 epochs in ``directory`` (none if ``None``)."""
    callbacks = [Checkpoint(directory, every=5)] if directory is not None else []
    return jdl.fit(
        TinyMLP(), blobs(256), validation=blobs(90, seed=1), epochs=EPOCHS, batch_size=32,
        optimizer=optax.adam(0.01), loss="cross_entropy", log_every=1, verbose=0,
        callbacks=callbacks + ([pace] if pace else []), resume=resume, on_sigterm=on_sigterm,
    )  # fmt: skip


def main(directory: str, runs: int, on_sigterm: str = "exit") -> None:
    for k in range(runs):
        try:
            history = fit_run(Path(directory) / f"run{k}", pace=Pace(k), on_sigterm=on_sigterm)
        except (KeyboardInterrupt, SystemExit) as err:
            if k == runs - 1 or not hasattr(err, "step"):
                print(getattr(err, "message", ""), file=sys.stderr)  # SystemExit prints none
                raise
            print(f"interrupted {k} {err.step}", flush=True)
        else:
            if history.stop_reason == "preempted":
                print(f"preempted {k} {int(history.state.step)}", flush=True)
            else:
                print(f"completed {k}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
