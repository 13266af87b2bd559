"""One process of the dead-peer test (``test_dead_peer.py`` starts it).

Run as ``python dead_peer_worker.py PROCESS_ID NUM_PROCESSES PORT VICTIM``: joins the
cluster (:mod:`cluster_harness`) and trains with ``jdl.fit``; process ``VICTIM`` kills
itself with SIGKILL at step 5 (no cleanup, as a crashed or preempted host). The others
must notice, say so in one line and exit non-zero, in bounded time.
"""

from __future__ import annotations

import os
import signal
import sys
import time

KILL_AT_STEP = 5


def main(process_id: int, num_processes: int, port: int, victim: int) -> None:
    from cluster_harness import join

    join(process_id, num_processes, port)
    from conftest import blobs

    import jdl

    class KillAt(jdl.train.callbacks.Callback):
        def on_metrics(self, run, first_step, fetched):
            if process_id == victim and run.step >= KILL_AT_STEP:
                print(f"killing process {process_id} at step {run.step}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    jdl.fit(
        jdl.nn.MLP(widths=(16,), num_outputs=3),
        blobs(512, seed=0),
        batch_size=32,
        loss="cross_entropy",
        optimizer=("sgd", 0.1),
        epochs=1000,
        callbacks=[KillAt()],
        log_every=1,
        verbose=0,
    )
    print(f"process {process_id}: fit returned at {time.time():.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
