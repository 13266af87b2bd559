"""jdl.train.sweep vs K sequential jdl.fit runs, side by side in one process.

Trains the MNIST-1D MLP (40-100-100-10, Adam, batch 100) for K learning rates, once as
K separate ``jdl.fit`` calls and once as one ``jdl.train.sweep``; both wall times include
everything a user waits for (compilation, data feeding, per-epoch evaluation on the test
set). Repeated ``--repeats`` times, interleaved; reports medians and their ratio.

    python benchmarks/bench_sweep.py [--k 8] [--epochs 10] [--repeats 3] [--model mlp|cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax

import jdl


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=8, help="number of learning rates")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    train = jdl.data.load("mnist1d", split="train")
    test = jdl.data.load("mnist1d", split="test")
    model = jdl.nn.get_model(f"mnist1d_{args.model}")
    lrs = [1e-3 * 2**i for i in range(args.k)]
    kw = dict(batch_size=100, loss="cross_entropy", epochs=args.epochs, validation=test,
              verbose=0)  # fmt: skip

    def sequential() -> float:
        t0 = time.perf_counter()
        for lr in lrs:
            jdl.fit(model, train, optimizer=jdl.train.optimizer("adam", lr), strategy="jit", **kw)
        return time.perf_counter() - t0

    def vmapped() -> float:
        t0 = time.perf_counter()
        jdl.train.sweep(model, train, optimizer="adam", learning_rates=lrs, **kw)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"sequential fits": [], "sweep": []}
    for _ in range(args.repeats):
        times["sequential fits"].append(sequential())
        times["sweep"].append(vmapped())
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["sequential fits"] / med["sweep"]
    result = {
        "benchmark": f"{args.k} x MNIST-1D {args.model}, Adam, batch 100, {args.epochs} epochs",
        "seconds": times,
        "median_seconds": med,
        "speedup_sweep_over_sequential": ratio,
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores",
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "command": "python benchmarks/bench_sweep.py "
        f"--k {args.k} --epochs {args.epochs} --repeats {args.repeats} --model {args.model}",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
