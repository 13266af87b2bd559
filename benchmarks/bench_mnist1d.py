"""Training speed on MNIST-1D: ``jdl.fit`` vs a hand-written ``jax.jit`` loop vs PyTorch.

Three contenders train the same model on the same batches (Adam, learning rate 1e-2,
batch 100, the 4,000 bundled MNIST-1D training examples reshuffled every epoch with
``jdl.data.epoch_order``), in one process, one after another, in several interleaved
repeats (the order rotates each repeat), so a change in the machine's load hits all of
them alike:

``jdl.fit``
    ``jdl.fit(model, train, batch_size=100, optimizer=optax.adam(1e-2),
    loss="cross_entropy", steps=..., strategy="jit", verbose=0)`` — with everything it
    does by default (accuracy computed on device, metrics fetched at the end of every
    epoch, dropout keys, per-epoch reshuffling). Its steady-state speed is timed by a
    callback between the first epoch end after the warm-up (compilation done) and the end.
``jax.jit loop``
    the loop one would write by hand with Flax and Optax: one ``jax.jit`` step
    ``(params, opt_state, x, y) -> (params, opt_state, {"loss", "accuracy"})`` with
    donated buffers, fed by NumPy fancy indexing, never syncing with the host; compiled
    and warmed up before timing. It computes the same metrics as ``fit`` (the same work);
    ``jax.jit loop, loss only`` skips the accuracy, for reference.
``torch eager``
    the equivalent ``torch.nn`` model (PyTorch's default initialisation; the speed does
    not depend on it), ``torch.optim.Adam``, ``nn.CrossEntropyLoss``, batches made with
    ``torch.from_numpy`` from the same indices; warmed up before timing. One intra-op
    thread by default (``--torch-threads``), PyTorch's fastest setting for these
    batch-100 models, and denormals flushed to zero (as XLA does).

Models: the MLP 40-100-100-10 (``jdl.nn.MLP(widths=(100, 100))``, 15,210 parameters)
and the paper's 1-D CNN (``jdl.nn.CNN(features=(25, 25, 25), kernel_size=(5, 3, 3),
strides=2, padding=1, ndim=1)``, 5,210 parameters; the same as
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

    if name == "mlp":
        return jdl.nn.MLP(widths=(100, 100), num_outputs=10)
    return jdl.nn.CNN(
        features=(25, 25, 25), kernel_size=(5, 3, 3), strides=2, padding=1, ndim=1, num_outputs=10
    )


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


# -- contenders: each returns steady-state steps/s ---------------------------------------
class _Timer:
    """A jdl callback noting the time of every metrics fetch after ``warmup`` steps."""

    def __init__(self, warmup: int):
        from jdl.train.callbacks import Callback

        self.warmup = warmup
        self.marks: list[tuple[int, float]] = []
        timer = self

        class _CB(Callback):
            def on_metrics(self, run, first_step, metrics):
                # Metrics were just copied to the host: every step so far has finished.
                if run.step >= timer.warmup:
                    timer.marks.append((run.step, time.perf_counter()))

        self.callback = _CB()

    def rate(self) -> float:
        (s0, t0), (s1, t1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0)


def run_fit(name: str, train, warmup: int, steps: int) -> float:
    import optax

    import jdl

    timer = _Timer(warmup)
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
        callbacks=[timer.callback],
    )
    return timer.rate()


class JitLoop:
    """The hand-written Flax/Optax ``jax.jit`` training loop."""

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

    def __call__(self, warmup: int, steps: int) -> float:
        import jax

        params = self.init(jax.random.PRNGKey(SEED))
        opt_state = self.tx.init(params)
        loss = None
        indices = list(batch_indices(len(self.x), warmup + steps))
        for idx in indices[:warmup]:
            params, opt_state, loss = self.step(params, opt_state, self.x[idx], self.y[idx])
        jax.block_until_ready((params, loss))
        t0 = time.perf_counter()
        for idx in indices[warmup:]:
            params, opt_state, loss = self.step(params, opt_state, self.x[idx], self.y[idx])
        jax.block_until_ready((params, loss))
        return steps / (time.perf_counter() - t0)


class TorchLoop:
    """PyTorch eager: the usual zero_grad / forward / backward / step loop."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray):
        self.name, self.x, self.y = name, x, y.astype(np.int64)

    def __call__(self, warmup: int, steps: int) -> float:
        import torch

        torch.manual_seed(SEED)
        model = torch_model(self.name)
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()

        def one(idx):
            xb, yb = torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            return loss

        indices = list(batch_indices(len(self.x), warmup + steps))
        for idx in indices[:warmup]:
            one(idx)
        t0 = time.perf_counter()
        for idx in indices[warmup:]:
            loss = one(idx)
        loss.item()  # eager: already computed; kept for symmetry with the others
        return steps / (time.perf_counter() - t0)


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
        contenders = {
            "jdl.fit": functools.partial(run_fit, name, train),
            "jax.jit loop": JitLoop(name, x, y),
            "jax.jit loop, loss only": JitLoop(name, x, y, accuracy=False),
            "torch eager": TorchLoop(name, x, y),
        }
        params = jdl.nn.count_params(
            jdl_model(name).init(jax.random.PRNGKey(0), x[:1], train=False)["params"]
        )
        torch_params = sum(p.numel() for p in torch_model(name).parameters())
        assert params == torch_params, (name, params, torch_params)
        # Compile and warm every contender once before any timing.
        for fn in contenders.values():
            fn(warmup, BATCH)
        runs = {k: [] for k in contenders}
        names = list(contenders)
        for r in range(repeats):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                runs[k].append(contenders[k](warmup, n))
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
    parser.add_argument("--mlp-steps", type=int, default=2000, help="timed steps, MLP")
    parser.add_argument("--cnn-steps", type=int, default=800, help="timed steps, CNN")
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
