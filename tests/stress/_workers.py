"""Processes for the stress suite to kill, race and measure (``python _workers.py MODE ...``).

``train DIR OUT [N]``
    One *life* of a checkpointed run: ``jdl.fit(..., resume=True)`` with
    ``Checkpoint(DIR, every_steps=EVERY_STEPS)`` (and at each epoch's end). It prints
    ``ready <k>`` once training is under way, ``save <step>`` before and ``saved <step>``
    after each checkpoint write, and ``done`` once the run is complete, its final
    variables and history written to ``OUT.npz`` and ``OUT.json``. With ``N`` it first
    damages the latest checkpoint with the ``N``-th (modulo) of tests/train/conftest.py's
    ``CORRUPTIONS``, so the resumption must fall back to the previous one.
``rss STEPS OUT``
    A ``STEPS``-step ``fit`` of a small MLP (checkpointed every 2,000 steps, validated each
    epoch), its resident memory (``VmRSS``) sampled every 1,000 steps into ``OUT`` (JSON).
``prepare NAME DATA_DIR [SECONDS]``
    Prints ``started`` and prepares bundled dataset ``NAME`` in ``DATA_DIR`` (with
    ``SECONDS`` of sleep per example written, to widen the moments a kill can land in),
    then prints one JSON line: its length, whether this process prepared it, and timings.
    With ``SECONDS`` ``wait``, it first waits for a line on stdin (a start signal).

The model, data and corruptions are tests/train's (its conftest.py, and interrupt_worker's
``Pace``, which also slows the steps so a kill lands inside training).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

EVERY_STEPS = 6
EPOCHS = 36  # of 8 steps: 288 steps, 72 checkpoints, about 8 s of training per run


def rss_kib() -> int:
    """This process's resident memory (``VmRSS`` of /proc/self/status), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _variables_file(history, out: Path) -> None:
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_leaves_with_path(history.variables)
    np.savez(out.with_suffix(".npz"), **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})
    record = {"metrics": history.metrics, "steps": history.steps, "epochs": history.epochs}
    out.with_suffix(".json").write_text(json.dumps(record))


def train(directory: str, out: str, corruption: str | None = None) -> None:
    import optax
    from conftest import CORRUPTIONS, TinyMLP, blobs
    from interrupt_worker import Pace

    import jdl
    from jdl.train import Checkpoint, latest_step

    class Marked(Checkpoint):
        def save(self, run):
            step = int(run.state.step)
            print(f"save {step}", flush=True)
            super().save(run)
            print(f"saved {step}", flush=True)

    if corruption is not None:
        how = list(CORRUPTIONS)[int(corruption) % len(CORRUPTIONS)]
        step = latest_step(directory)
        CORRUPTIONS[how](Path(directory) / str(step))
        print(f"corrupted {step} {how}", flush=True)
    history = jdl.fit(
        TinyMLP(dropout=0.2), blobs(256), validation=blobs(90, seed=1), epochs=EPOCHS,
        batch_size=32, optimizer=optax.adam(0.01), loss="cross_entropy", log_every=1,
        verbose=0, callbacks=[Marked(directory, every_steps=EVERY_STEPS), Pace(0)],
        resume=True,
    )  # fmt: skip
    _variables_file(history, Path(out))
    print("done", flush=True)


def rss(steps: str, out: str) -> None:
    import optax
    from conftest import blobs

    import jdl
    from jdl.train import Checkpoint
    from jdl.train.callbacks import Callback

    samples: list[tuple[int, int]] = []

    class SampleRSS(Callback):
        def on_metrics(self, run, first_step, metrics):
            if run.step >= 1000 * len(samples):  # at the first fetch from each 1,000th step
                samples.append((run.step, rss_kib()))

    samples.append((0, rss_kib()))
    start = time.monotonic()
    history = jdl.fit(
        jdl.nn.MLP(widths=(32, 32), num_outputs=3), blobs(4096), validation=blobs(256, seed=1),
        steps=int(steps), batch_size=32, optimizer=optax.adam(1e-3), loss="cross_entropy",
        log_every=100, verbose=0,
        callbacks=[SampleRSS(), Checkpoint(Path(out).parent / "ck", every=None, every_steps=2000)],
    )  # fmt: skip
    record = {"samples": samples, "seconds": time.monotonic() - start, "steps": history.steps[-1]}
    Path(out).write_text(json.dumps(record))


def prepare(name: str, data_dir: str, seconds: str = "0") -> None:
    import jdl.data as jd

    if seconds == "wait":
        print("started", flush=True)
        sys.stdin.readline()
    elif float(seconds):
        from jdl.data.builders import BUILDERS

        cls = BUILDERS[name]
        generate = cls._generate_examples

        def slow(self, *args, **kwargs):
            for example in generate(self, *args, **kwargs):
                time.sleep(float(seconds))
                yield example

        cls._generate_examples = slow
    if seconds != "wait":
        print("started", flush=True)
    prepared = []

    class Seen(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Preparing jdl dataset"):
                prepared.append(True)

    logger = logging.getLogger("jdl.data")
    logger.setLevel(logging.INFO)
    logger.addHandler(Seen())
    start = time.time()
    source = jd.load(name, "train", data_dir=data_dir)
    end = time.time()
    first = source[0]
    record = {
        "len": len(source), "prepared_here": bool(prepared), "start": start, "end": end,
        "first": [float(v) for v in first["x"].ravel()[:4]] + [int(first["y"])],
    }  # fmt: skip
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"train": train, "rss": rss, "prepare": prepare}[mode](*args)
