"""Training speed on MNIST-1D: ``jdl.fit`` vs a hand-written ``jax.jit`` loop vs PyTorch.

The contenders train the same model on the same batches (Adam, learning rate 1e-2,
batch 100, the 4,000 bundled MNIST-1D training examples reshuffled every epoch with
``jdl.data.epoch_order``), in one process, interleaved epoch by epoch so that the
machine's load — however much it changes — hits all of them alike:

``jdl.fit``
    ``jdl.fit(model, train, batch_size=100, optimizer=optax.adam(1e-2),
    loss="cross_entropy", steps=..., strategy="jit", verbose=0)`` — with everything it
    does by default (accuracy computed on device, metrics fetched at the end of every
    epoch, dropout keys, per-epoch reshuffling). A callback runs at each epoch end, once
    fit has fetched the epoch's metrics (so its steps have all finished); fit's time for
    an epoch runs from the callback's exit to its next entry.
``jax.jit loop``
    the loop one would write by hand with Flax and Optax: one ``jax.jit`` step
    ``(params, opt_state, x, y) -> (params, opt_state, {"loss", "accuracy"})`` with
    donated buffers, fed by NumPy fancy indexing, syncing only at the end of a chunk.
    It computes the same metrics as ``fit`` (the same work); ``jax.jit loop, loss only``
    skips the accuracy, for reference.
``torch eager``
    the equivalent ``torch.nn`` model, ``torch.optim.Adam``, ``nn.CrossEntropyLoss``,
    batches made with ``torch.from_numpy`` from the same indices. One intra-op thread by
    default (``--torch-threads``), PyTorch's fastest setting for these batch-100 models,
    and denormals flushed to zero (as XLA does).

Inside the callback, each of the other contenders trains (on its own state) on the 40
batches fit has just used, timed from an idle device to finished work. All are
compiled and warmed up first; the first ``--warmup`` steps are not timed. Each repeat
is one fit run; the table reports medians over repeats.

Models: the MLP 40-100-100-10 (``jdl.nn.get_model("mnist1d_mlp")``, 15,210 parameters)
and the paper's 1-D CNN (``jdl.nn.get_model("mnist1d_cnn")``: three convs of 25 channels,
kernels 5, 3, 3, stride 2, padding 1; 5,210 parameters; the same as
``examples/07_training/plot_mnist1d_table.py``).

Run it with ``nox -s bench`` (installs PyTorch) or directly::

    python benchmarks/bench_mnist1d.py --repeats 5 --out benchmarks/results/mnist1d_cpu

It prints a table and writes ``<out>.json`` and ``<out>.md`` with the machine, the
versions and the exact command.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 100
LEARNING_RATE = 1e-2
SEED = 0


# -- models ----------------------------------------------------------------------------
def jdl_model(name: str):
    """The jdl model of the MNIST-1D table."""
    import jdl

    return jdl.nn.get_model(f"mnist1d_{name}")


def torch_model(name: str):
    """The same architecture in ``torch.nn`` (inputs ``(batch, 40)``)."""
    from torch import nn

    if name == "mlp":
        return nn.Sequential(
            nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(125, 10),
    )


# -- the batches all contenders see ------------------------------------------------------
def batch_indices(n: int, steps: int, start: int = 0):
    """Index arrays of the global batches ``start .. start + steps - 1`` (as fit's feed)."""
    from jdl.data import epoch_order

    per_epoch = n // BATCH
    order, order_epoch = None, None
    for s in range(start, start + steps):
        epoch, b = divmod(s, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(n, SEED, epoch), epoch
        yield order[b * BATCH : (b + 1) * BATCH]


# -- contenders ---------------------------------------------------------------------------
class JitLoop:
    """The hand-written Flax/Optax ``jax.jit`` training loop, run in chunks of steps."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, *, accuracy: bool = True):
        import jax
        import jax.numpy as jnp
        import optax

        self.x, self.y = x, y
        self.model = jdl_model(name)
        self.tx = optax.adam(LEARNING_RATE)
        model, tx = self.model, self.tx

        def loss_fn(params, xb, yb):
            logits = model.apply({"params": params}, xb, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(params, opt_state, xb, yb):
            (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, xb, yb)
            updates, opt_state = tx.update(grads, opt_state, params)
            metrics = {"loss": loss}
            if accuracy:  # the same work as fit, which reports accuracy by default
                metrics["accuracy"] = jnp.mean(jnp.argmax(logits, -1) == yb)
            return optax.apply_updates(params, updates), opt_state, metrics

        self.step = step
        self.init = jax.jit(lambda key: model.init(key, x[:1], train=False)["params"])

    def reset(self) -> None:
        """Fresh parameters and optimiser state."""
        import jax

        self.params = self.init(jax.random.PRNGKey(SEED))
        self.opt_state = self.tx.init(self.params)

    def chunk(self, indices) -> float:
        """Train on the batches ``indices``; seconds from idle device to finished."""
        import jax

        jax.block_until_ready(self.params)
        t0 = time.perf_counter()
        metrics = None
        for idx in indices:
            self.params, self.opt_state, metrics = self.step(
                self.params, self.opt_state, self.x[idx], self.y[idx]
            )
        jax.block_until_ready((self.params, metrics))
        return time.perf_counter() - t0


class TorchLoop:
    """PyTorch eager: the usual zero_grad / forward / backward / step loop, in chunks."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray):
        self.name, self.x, self.y = name, x, y.astype(np.int64)

    def reset(self) -> None:
        import torch

        torch.manual_seed(SEED)
        self.model = torch_model(self.name)
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def chunk(self, indices) -> float:
        import torch

        t0 = time.perf_counter()
        for idx in indices:
            xb, yb = torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(xb), yb)
            loss.backward()
            self.opt.step()
        loss.item()  # eager: already computed
        return time.perf_counter() - t0


def paired_run(name: str, train, others: dict, warmup: int, steps: int, shift: int) -> dict:
    """One ``jdl.fit`` run, with every other contender timed between its epochs.

    A callback runs at each epoch end, after fit has fetched the epoch's metrics (so all
    its steps have finished): it trains each other contender on the same 40 batches that
    fit just used, timing each. fit's time for an epoch is from the callback's exit to
    its next entry, so it includes everything fit does per epoch (feeding, dispatch,
    the metric fetch, bookkeeping) but none of the others' work. Measurements taken
    milliseconds apart see the same machine load.

    Returns:
        Steady-state steps/s per contender (after ``warmup`` steps).
    """
    import optax

    import jdl
    from jdl.train.callbacks import Callback

    n = len(train)
    names = ["jdl.fit", *others]
    seconds, counts = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
    for contender in others.values():
        contender.reset()
    mark = {"exit": None, "step": 0, "epoch": shift}

    class Interleave(Callback):
        def on_metrics(self, run, first_step, metrics):
            now = time.perf_counter()
            if run.step < warmup:
                return
            if mark["exit"] is not None:
                seconds["jdl.fit"] += now - mark["exit"]
                counts["jdl.fit"] += run.step - mark["step"]
            size = run.step - mark["step"] if mark["exit"] is not None else 40
            indices = list(batch_indices(n, size, start=run.step - size))
            order = list(others)
            k = mark["epoch"] % len(order)
            for key in order[k:] + order[:k]:
                seconds[key] += others[key].chunk(indices)
                counts[key] += len(indices)
            mark.update(exit=time.perf_counter(), step=run.step, epoch=mark["epoch"] + 1)

    jdl.fit(
        jdl_model(name),
        train,
        batch_size=BATCH,
        optimizer=optax.adam(LEARNING_RATE),
        loss="cross_entropy",
        steps=warmup + steps,
        strategy="jit",
        seed=SEED,
        verbose=0,
        callbacks=[Interleave()],
    )
    return {k: counts[k] / seconds[k] for k in names}


# -- the run -----------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("jdl", "jax", "jaxlib", "flax", "optax", "numpy", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def run(models, repeats: int, steps: dict[str, int], warmup: int) -> dict:
    import jax
    import torch

    import jdl

    train = jdl.data.load("mnist1d", split="train")
    arrays = jdl.data.as_arrays(train)
    x, y = arrays["x"].astype(np.float32), arrays["y"]
    results = {}
    for name in models:
        n = steps[name]
        others = {
            "jax.jit loop": JitLoop(name, x, y),
            "jax.jit loop, loss only": JitLoop(name, x, y, accuracy=False),
            "torch eager": TorchLoop(name, x, y),
        }
        params = jdl.nn.count_params(
            jdl_model(name).init(jax.random.PRNGKey(0), x[:1], train=False)["params"]
        )
        torch_params = sum(p.numel() for p in torch_model(name).parameters())
        assert params == torch_params, (name, params, torch_params)
        # Compile and warm up the others once (fit compiles in each of its runs).
        for contender in others.values():
            contender.reset()
            contender.chunk(list(batch_indices(len(x), warmup)))
        runs = {k: [] for k in ["jdl.fit", *others]}
        for r in range(repeats):
            rates = paired_run(name, train, others, warmup, n, shift=r)
            for k, v in rates.items():
                runs[k].append(v)
            print(
                f"{name} repeat {r + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()),
                flush=True,
            )
        fit, jit, eager = runs["jdl.fit"], runs["jax.jit loop"], runs["torch eager"]
        over_jit = [a / b for a, b in zip(fit, jit, strict=True)]
        over_torch = [a / b for a, b in zip(fit, eager, strict=True)]
        results[name] = {
            "params": params,
            "timed_steps": n,
            "steps_per_s": runs,
            "median_steps_per_s": {k: statistics.median(v) for k, v in runs.items()},
            "ratio_fit_over_jit": {
                "median_of_repeats": statistics.median(over_jit),
                "per_repeat": over_jit,
            },
            "ratio_fit_over_torch": {
                "median_of_repeats": statistics.median(over_torch),
                "per_repeat": over_torch,
            },
        }
    results["_torch_threads"] = torch.get_num_threads()
    return results


def to_markdown(report: dict) -> str:
    m, v = report["machine"], report["versions"]
    lines = [
        "# MNIST-1D training speed: jdl.fit vs hand-written jax.jit loop vs PyTorch eager",
        "",
        f"- Date (UTC): {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}",
        f"- Load average (1 min) before / after: {report['load_before'][0]:.1f} / "
        f"{report['load_after'][0]:.1f}",
        f"- Versions: {', '.join(f'{k} {val}' for k, val in v.items())}",
        f"- PyTorch threads: {report['results']['_torch_threads']}, flush-denormal on; "
        f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!s}",
        f"- Setup: Adam lr {LEARNING_RATE}, batch {BATCH}, {report['repeats']} interleaved "
        f"repeats, warm-up {report['warmup']} steps before each timing; steady-state steps/s.",
    ]
    if report.get("note"):
        lines.append(f"- Note: {report['note']}")
    lines += [
        "",
        "| model | params | jdl.fit | jax.jit loop | jax.jit loop, loss only | torch eager "
        "| fit / jit loop | fit / torch | fit / jit loop (of medians) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        if name.startswith("_"):
            continue
        med = r["median_steps_per_s"]
        lines.append(
            f"| {name} | {r['params']:,} | {med['jdl.fit']:.0f} | {med['jax.jit loop']:.0f} | "
            f"{med['jax.jit loop, loss only']:.0f} | {med['torch eager']:.0f} | "
            f"{r['ratio_fit_over_jit']['median_of_repeats']:.2f} | "
            f"{r['ratio_fit_over_torch']['median_of_repeats']:.2f} | "
            f"{med['jdl.fit'] / med['jax.jit loop']:.2f} |"
        )
    lines += [
        "",
        "Columns 3-6 are steps/s, medians over the repeats; the ratios are medians of the "
        "per-repeat ratios (each repeat runs the contenders back to back); the last column "
        "is the ratio of the median steps/s. Per-repeat values "
        "are in the JSON file next to this one. Targets (issue 3): fit / jit >= 0.9, "
        "fit / torch >= 2.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats")
    parser.add_argument("--mlp-steps", type=int, default=1200, help="timed steps, MLP")
    parser.add_argument("--cnn-steps", type=int, default=400, help="timed steps, CNN")
    parser.add_argument("--warmup", type=int, default=80, help="untimed steps first")
    parser.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: faster for these batch-100 models, whose "
        "ops are too small to split, and robust when the machine is busy)",
    )
    args = parser.parse_args(argv)
    for flag in ("mlp_steps", "cnn_steps", "warmup"):
        value = getattr(args, flag)
        if value % 40:  # fit's timer reads the clock at epoch ends (40 steps of 100)
            parser.error(f"--{flag.replace('_', '-')} must be a multiple of 40; got {value}")

    import torch

    torch.set_num_threads(args.torch_threads)
    # Flush denormals to zero, as XLA does on CPU: Adam's tiny second moments otherwise
    # put PyTorch's elementwise ops on the slow denormal path.
    torch.set_flush_denormal(True)
    load_before = os.getloadavg()
    results = run(
        args.models, args.repeats, {"mlp": args.mlp_steps, "cnn": args.cnn_steps}, args.warmup
    )
    report = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "note": args.note,
        "results": results,
    }
    md = to_markdown(report)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(md)
    return report


if __name__ == "__main__":
    main()
