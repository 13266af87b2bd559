"""Resident memory over many checkpoint saves, with and without jdl's leak bound (issue #19).

Saves a small TrainState (``jdl.nn.MLP(widths=(8,))``, Adam) ``--saves`` times with
:func:`jdl.train.save_state` (``max_to_keep=3``, as a long run's ``Checkpoint`` does) and
reads the process's resident memory (``VmRSS`` of ``/proc/self/status``) every
``--every`` saves. Three variants run side by side, each in a fresh process, at the same time
(so all see the same machine load):

- ``unbounded``: Orbax as it is (``jdl.train.checkpoint._bound_tensorstore_leak`` skipped):
  the behaviour before the fix;
- ``metrics_only``: only Orbax's per-save TensorStore metrics read stopped, Orbax's
  ``KvStore.Spec(...).to_json()`` of every array left as it is (jdl before
  ``jdl.train._tensorstore_leak``);
- ``bounded``: jdl as it is, which does both (see ``_bound_tensorstore_leak``).

Run it (about 5 minutes on a busy 2-core machine)::

    JAX_PLATFORMS=cpu python benchmarks/checkpoint_memory.py --saves 1500 \\
        --json benchmarks/results/checkpoint_memory.json

The load average before and after is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status (Linux only)")


def _child(variant: str, saves: int, every: int) -> None:
    import numpy as np
    import optax

    from jdl.nn import MLP
    from jdl.train import _tensorstore_leak, checkpoint, create_state, save_state

    if variant == "unbounded":
        checkpoint._LEAK_BOUNDED = True  # as if already done: Orbax is left as it is
    elif variant == "metrics_only":
        _tensorstore_leak.avoid_spec_to_json = lambda: False
    state = create_state(MLP(widths=(8,), num_outputs=3), optax.adam(1e-3), np.zeros((2, 5)), 0)
    samples = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        for i in range(saves + 1):
            if i % every == 0:
                samples.append((i, _rss_kib()))
            if i < saves:
                save_state(directory, state.replace(step=i), metadata={"i": i}, max_to_keep=3)
    seconds = time.perf_counter() - start
    print(json.dumps({"variant": variant, "samples": samples, "seconds": seconds}))


def _slope(samples: list[list[int]]) -> float:
    """Least-squares KiB per save of ``(save, KiB)`` samples."""
    n = len(samples)
    mx, my = sum(x for x, _ in samples) / n, sum(y for _, y in samples) / n
    sxx = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / sxx if sxx else 0.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100, help="read the RSS every this many")
    parser.add_argument("--warmup", type=int, default=100, help="saves before the growth counts")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.saves, args.every)
        return
    load_before = _load()
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    procs = {
        v: subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                v,
                "--saves",
                str(args.saves),
                "--every",
                str(args.every),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )  # fmt: skip
        for v in ("unbounded", "metrics_only", "bounded")
    }
    results = {}
    for v, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"the {v} run failed with status {proc.returncode}")
        results[v] = json.loads(out.strip().splitlines()[-1])
    load_after = _load()
    print(f"{args.saves} saves; load average (1, 5, 15 min) {load_before} -> {load_after}")
    print("| variant | RSS at 0 | at warm-up | at end | growth after warm-up | fitted | s/save |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v, r in results.items():
        samples = dict(r["samples"])
        first, warm, end = samples[0], samples.get(args.warmup, samples[0]), samples[args.saves]
        per_save = (end - warm) / max(args.saves - args.warmup, 1)
        r["per_save_kib"] = per_save
        r["fitted_kib"] = fitted = _slope([s for s in r["samples"] if s[0] >= args.warmup])
        print(
            f"| {v} | {first / 1024:.1f} MiB | {warm / 1024:.1f} MiB | {end / 1024:.1f} MiB | "
            f"{per_save:.2f} KiB/save | {fitted:.2f} KiB/save | {r['seconds'] / args.saves:.3f} |"
        )
    if args.json:
        meta = {"saves": args.saves, "load_before": load_before, "load_after": load_after}
        with open(args.json, "w") as f:
            json.dump({**meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
