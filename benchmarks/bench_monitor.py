"""The cost of jdl.analysis.TrainingMonitor: steady-state step time with and without it.

Each measurement is a fresh process (``--child``) that trains an MNIST-1D model (Adam,
batch 100, 40 steps an epoch) for ``--steps`` steps and reports the wall time per step from
the end of epoch 2 to the end of the last epoch: steady state, with compilation (the step's
and the monitor's pass) behind. The contenders -- no monitor, and a monitor recording every
``--every`` steps on a 256-example probe batch (``fit``'s ``log_every`` set to the same
value in both) -- run alternately, ``--repeats`` times each; medians, their ratio, the load
average before and after and the versions are printed and written to ``--json``.

    python benchmarks/bench_monitor.py [--model mlp|cnn] [--every 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import optax

    import jdl
    from jdl.analysis import TrainingMonitor
    from jdl.train.callbacks import Callback

    class EpochClock(Callback):
        """The wall time at the end of every epoch."""

        def __init__(self):
            self.times: list[float] = []
            self.steps: list[int] = []

        def on_epoch_end(self, run, logs):
            self.times.append(time.perf_counter())
            self.steps.append(run.step)

    data = jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    model = jdl.nn.get_model(f"mnist1d_{args.model}")
    clock = EpochClock()
    callbacks = [clock]
    if args.contender == "monitor":
        callbacks.append(TrainingMonitor((x[:256], y[:256]), "cross_entropy", every=args.every))
    jdl.fit(model, (x, y), batch_size=100, steps=args.steps, optimizer=optax.adam(1e-3),
            loss="cross_entropy", log_every=args.every, verbose=0, strategy="jit",
            callbacks=callbacks)  # fmt: skip
    # From the end of epoch 2 on: compilation (the step's and the monitor's) is behind.
    seconds = clock.times[-1] - clock.times[1]
    steps = clock.steps[-1] - clock.steps[1]
    print(json.dumps({"us_per_step": 1e6 * seconds / steps}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", default="plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import jax

    import jdl

    load_before = os.getloadavg()
    results: dict[str, list[float]] = {"plain": [], "monitor": []}
    for i in range(args.repeats):
        order = ("plain", "monitor") if i % 2 == 0 else ("monitor", "plain")
        for contender in order:
            cmd = [sys.executable, __file__, "--child", "--contender", contender,
                   "--model", args.model, "--every", str(args.every),
                   "--steps", str(args.steps)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            us = json.loads(out.strip().splitlines()[-1])["us_per_step"]
            results[contender].append(us)
            print(f"{contender:8s} {us:8.1f} us/step", flush=True)
    medians = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "model": f"mnist1d_{args.model}",
        "every": args.every,
        "steps": args.steps,
        "repeats": args.repeats,
        "us_per_step": results,
        "median_us_per_step": medians,
        "ratio_monitor_over_plain": medians["monitor"] / medians["plain"],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "versions": {
            "jdl": jdl.__version__,
            "jax": jax.__version__,
            "python": platform.python_version(),
        },  # fmt: skip
    }
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
