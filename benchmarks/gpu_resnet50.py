"""ResNet-50 training throughput on one accelerator: jdl vs torchvision, bf16.

One short, prepared run for a GPU machine (issue #13). Every contender trains ResNet-50
v1.5 (25.6 M parameters) at 224 x 224 on synthetic ImageNet-shaped data (1,000 classes),
momentum SGD, batch 256, computing in bfloat16:

``jdl on-device``
    ``jdl.nn.resnet50`` trained by ``jdl.train.train_step(..., precision="bfloat16")``
    compiled with ``jdl.train.parallelize`` (the step ``jdl.fit`` runs: float32
    parameters, optimiser state and BatchNorm statistics, bf16 compute), the batch placed
    on the device once -- the pure compute speed.
``jdl host-fed``
    the same step fed a new NumPy batch from the host every step (what ``fit`` does with
    an in-memory source): the difference is the host-to-device copy.
``torch AMP``
    ``torchvision.models.resnet50`` in ``channels_last``, ``torch.autocast(bfloat16)``,
    ``torch.optim.SGD`` with momentum, data on the device (skipped without torch or CUDA).
``torch AMP + compile``
    the same, ``torch.compile``-d.

Images per second are medians over ``--repeats`` timed windows of ``--steps`` steps,
after ``--warmup`` untimed steps (compilation). MFU = images/s x 24.5 GFLOP (3 x the
4.1 GFLOP multiply-adds x 2 of a 224 x 224 forward pass) / the device's peak bf16 dense
FLOP/s (``--peak-tflops``; by default looked up from the device kind: H100/H200 989,
A100 312, L4 121, v5e 197, v4 275).

Run it on the GPU machine as::

    python benchmarks/gpu_resnet50.py --out benchmarks/results/gpu_resnet50.json

``--smoke`` runs a tiny version (batch 4, 64 x 64, 2 steps, no MFU) on whatever device is
there -- what the tests do on the CPU, so the script is known to work before a GPU runs it.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Training FLOPs of one 224 x 224 image (forward 4.1 GMACs x 2 FLOPs x 3 for fwd+bwd).
FLOPS_PER_IMAGE = 24.5e9
#: Peak dense bf16 FLOP/s by device-kind substring (vendor figures, without sparsity).
PEAK_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L4": 121, "v5e": 197, "v4": 275}


def _peak(kind: str, given: float | None) -> float | None:
    if given:
        return given * 1e12
    for name, tflops in PEAK_TFLOPS.items():
        if name.lower() in kind.lower():
            return tflops * 1e12
    return None


def _timed(one, sync, args: argparse.Namespace) -> dict[str, Any]:
    """Warm ``one()`` up (compilation), then its images/s over the timed windows."""
    start = time.perf_counter()
    for _ in range(args.warmup):
        one()
    sync()
    warmup_s = time.perf_counter() - start
    rates = _window(one, args.steps, args.repeats, args.batch, sync)
    return {"images_per_s": statistics.median(rates), "windows": rates, "warmup_s": warmup_s}


def _window(step, steps: int, repeats: int, batch: int, sync) -> list[float]:
    """Images/s of ``repeats`` windows of ``steps`` calls of ``step()``."""
    rates = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates


def run_jdl(args: argparse.Namespace, host_fed: bool) -> dict[str, Any]:
    """The jdl contenders: the train_step fit runs, on-device or host-fed batches."""
    import jax
    import optax

    import jdl

    model = jdl.nn.resnet50(num_outputs=1000)
    rng = np.random.default_rng(0)
    shape = (args.batch, args.image, args.image, 3)
    host = {
        "x": rng.standard_normal(shape, dtype=np.float32),
        "y": rng.integers(0, 1000, args.batch).astype(np.int32),
    }
    state = jdl.train.create_state(model, optax.sgd(0.1, momentum=0.9), host["x"][:1])
    step = jdl.train.parallelize(
        functools.partial(jdl.train.train_step, loss_fn="cross_entropy", precision=args.precision),
        "jit",
    )
    on_device = step.put_batch(host)
    holder = {"state": state}

    def one() -> None:
        batch = host if host_fed else on_device
        holder["state"], holder["metrics"] = step(holder["state"], batch)

    def sync() -> None:
        jax.block_until_ready(holder["state"].params)

    return {**_timed(one, sync, args), "loss": float(holder["metrics"]["loss"])}


def run_torch(args: argparse.Namespace, compiled: bool) -> dict[str, Any] | str:
    """torchvision's resnet50, channels_last, bf16 autocast, on CUDA (else: why not)."""
    try:
        import torch
        import torchvision
    except ImportError as err:
        return f"skipped: {err}"
    if not torch.cuda.is_available() and not args.smoke:
        return "skipped: no CUDA device"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torchvision.models.resnet50(num_classes=1000).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, args.image, args.image, device=device)
    x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    forward = torch.compile(model) if compiled else model

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    return _timed(one, sync, args)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--contenders", default="jdl,jdl_host,torch,torch_compile")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on any device")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.image, args.steps, args.repeats, args.warmup = 4, 64, 2, 1, 1
    import jax

    device = jax.devices()[0]
    peak = None if args.smoke else _peak(device.device_kind, args.peak_tflops)
    runs = {
        "jdl": ("jdl on-device", functools.partial(run_jdl, host_fed=False)),
        "jdl_host": ("jdl host-fed", functools.partial(run_jdl, host_fed=True)),
        "torch": ("torch AMP", functools.partial(run_torch, compiled=False)),
        "torch_compile": ("torch AMP + compile", functools.partial(run_torch, compiled=True)),
    }
    results: dict[str, Any] = {}
    for key in args.contenders.split(","):
        name, run = runs[key]
        result = run(args)
        if isinstance(result, dict) and peak:
            result["mfu"] = result["images_per_s"] * FLOPS_PER_IMAGE / peak
        results[name] = result
        shown = (f"{result['images_per_s']:8.1f} img/s" if isinstance(result, dict)
                 else result)  # fmt: skip
        mfu = f"  MFU {result['mfu']:.1%}" if isinstance(result, dict) and "mfu" in result else ""
        print(f"{name:22s} {shown}{mfu}", flush=True)
    record = {
        "command": " ".join([sys.executable, *sys.argv]),
        "device": f"{device.platform}: {device.device_kind}",
        "jax": jax.__version__,
        "python": platform.python_version(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "flops_per_image": FLOPS_PER_IMAGE,
        "peak_flops": peak,
        "results": results,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
