"""What is equal across strategies: ``jdl.fit`` under each strategy against ``"jit"``.

Trains each model for the same steps on the same data with the same seed under every
strategy of :data:`jdl.train.STRATEGIES` and records, against ``"jit"``, the largest absolute
difference of any parameter, of any BatchNorm statistic, of the trained model's outputs
(evaluation mode, computed with ``"jit"`` on held-out examples) and of the final epoch's
training loss. Run on 8 simulated CPU devices (the flag is set before JAX is imported)::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        python benchmarks/strategy_equality.py --out benchmarks/results/strategy_equality.json

The table of docs/howto/multi_device.rst ("What is equal across strategies") is this file's
``results``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import jdl  # noqa: E402
from jdl._core.files import atomic_write_text  # noqa: E402


class FlaxDropoutMLP(nn.Module):
    """A user's own model: ``flax.linen.Dropout`` (not jdl's layer) after a hidden layer."""

    num_outputs: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.relu(nn.Dense(64)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(0.3, deterministic=not train)(x)
        return nn.Dense(self.num_outputs)(x)


def models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The models of the table, each with the shape of one input example."""
    return {
        "MLP": (jdl.nn.MLP(widths=(64, 64), num_outputs=10), (40,)),
        "MLP + BatchNorm": (jdl.nn.MLP(widths=(64, 64), num_outputs=10, batch_norm=True), (40,)),
        "MLP + dropout 0.3": (jdl.nn.MLP(widths=(64, 64), num_outputs=10, dropout=0.3), (40,)),
        "MLP + flax.linen.Dropout 0.3": (FlaxDropoutMLP(), (40,)),
        "CNN (1-D) + dropout 0.3": (
            jdl.nn.CNN(features=(8, 16), ndim=1, num_outputs=10, dense=(32,), dropout=0.3),
            (40,),
        ),
        "CifarResNet-8 (BatchNorm)": (jdl.nn.CifarResNet(depth=8, width=8), (16, 16, 3)),
    }


def data(shape: tuple[int, ...], n: int, seed: int = 0) -> jdl.data.ArraySource:
    """``n`` examples of ten Gaussian classes (class-dependent means) of ``shape``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    centres = np.random.default_rng(123).normal(size=(10, *shape))
    x = centres[y] + rng.normal(size=(n, *shape))
    return jdl.data.from_arrays(x.astype(np.float32), y.astype(np.int64))


def train(model: nn.Module, source, test, strategy: str, steps: int, batch_size: int, opt):
    """``fit`` for ``steps`` steps: the final variables, the outputs on ``test`` (evaluation
    mode, by ``"jit"``) and the last epoch's loss."""
    history = jdl.fit(
        model, source, batch_size=batch_size, loss="cross_entropy",
        optimizer=jdl.train.optimizer(*opt), steps=steps, strategy=strategy,
        seed=0, verbose=0,
    )  # fmt: skip
    variables = jax.device_get(history.variables)
    outputs = jdl.train.predict(model, variables, test.x, batch_size=128, strategy="jit")
    return variables, np.asarray(outputs), history.metrics["loss"][-1]


def max_difference(a, b) -> float:
    """The largest absolute difference between two trees of arrays of the same structure."""
    if not jax.tree.leaves(a):
        return 0.0
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def measure(steps: int, batch_size: int, examples: int, opt: tuple[str, float]) -> dict:
    """For each model, each strategy's largest differences from jit, with optimiser ``opt``
    (a name and a learning rate for :func:`jdl.train.optimizer`)."""
    results = {}
    for name, (model, shape) in models().items():
        source, test = data(shape, examples), data(shape, 256, seed=1)
        ref_vars, ref_out, ref_loss = train(model, source, test, "jit", steps, batch_size, opt)
        row = {}
        for strategy in jdl.train.STRATEGIES:
            if strategy == "jit":
                continue
            try:
                got_vars, got_out, got_loss = train(
                    model, source, test, strategy, steps, batch_size, opt
                )
            except Exception as e:  # recorded in the table: what fails, and how
                row[strategy] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
                continue
            row[strategy] = {
                "params": max_difference(got_vars["params"], ref_vars["params"]),
                "batch_stats": max_difference(
                    got_vars.get("batch_stats", {}), ref_vars.get("batch_stats", {})
                ),
                "outputs": float(np.max(np.abs(got_out - ref_out))),
                "loss_difference": abs(got_loss - ref_loss),
                "loss": got_loss,
            }
        results[name] = {"jit_loss": ref_loss, "vs_jit": row}  # max absolute differences
        print(opt, name, json.dumps(row), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    """Measure and write the JSON file (atomically)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--examples", type=int, default=640)
    parser.add_argument(
        "--optimizers", nargs="+", default=["adam:1e-2", "momentum:0.05"],
        help="NAME:LEARNING_RATE for jdl.train.optimizer, one table each",
    )  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/strategy_equality.json")
    args = parser.parse_args(argv)
    load_before = open("/proc/loadavg").read().strip() if os.path.exists("/proc/loadavg") else ""
    start = time.time()
    results = {}
    for spec in args.optimizers:
        name, _, rate = spec.partition(":")
        results[spec] = measure(args.steps, args.batch_size, args.examples, (name, float(rate)))
    record = {
        "command": "XLA_FLAGS=--xla_force_host_platform_device_count=8 python "
        + " ".join(["benchmarks/strategy_equality.py", *(argv or sys.argv[1:])]),
        "jax": jax.__version__,
        "jdl": jdl.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "machine": platform.machine(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seconds": round(time.time() - start, 1),
        "load_before": load_before,
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
