"""One process of the multi-process preemption test (``test_preemption_multiprocess.py``).

Run as ``python preempt_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR MODE``: joins the
cluster (:mod:`cluster_harness`), prints ``ready`` once training is under way, and trains
with ``jdl.fit(..., on_sigterm=MODE)`` and a ``Checkpoint`` in ``OUT_DIR/checkpoints``. The
test sends SIGTERM to one process only; every process must stop after the same step, save
it, and print ``preempted <step>`` (``MODE="return"``) or exit 143 (``"exit"``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(process_id: int, num_processes: int, port: int, out_dir: str, mode: str) -> None:
    from cluster_harness import join

    join(process_id, num_processes, port)
    from conftest import blobs

    import jdl

    class Pace(jdl.train.callbacks.Callback):
        """Says when training is under way; slows it so the signal lands inside it."""

        told = False

        def on_metrics(self, run, first_step, fetched):
            if not self.told:
                print("ready", flush=True)
                self.told = True
            time.sleep(0.02)

    checkpoint = jdl.train.Checkpoint(Path(out_dir) / "checkpoints", every=1000)
    try:
        history = jdl.fit(
            jdl.nn.MLP(widths=(16,), num_outputs=3), blobs(256, seed=0), batch_size=32,
            loss="cross_entropy", optimizer=("sgd", 0.1), epochs=1000, log_every=1, verbose=0,
            callbacks=[Pace(), checkpoint], on_sigterm=mode,
        )  # fmt: skip
    except SystemExit as err:
        print(f"exit {err.code} after step {getattr(err, 'step', None)}", flush=True)
        raise
    print(f"{history.stop_reason} {int(history.state.step)}", flush=True)
    jdl.save_model(Path(out_dir) / "model", history.state.model, history.variables)
    print("model saved", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
