"""``python -m jdl diagnose``: :func:`jdl.analysis.diagnose` on a dataset, from the shell.

The model is built as ``python -m jdl train`` builds it (:mod:`jdl._cli.models`), for the
dataset's inputs and classes, with the loss ``train`` would use (``cross_entropy`` for
classification, ``mse`` otherwise); the optimiser and learning rate given are the ones
diagnosed. The report is printed; ``--json`` and ``--plot`` also save it (atomically: a
file is whole or absent). Exit status: 0 with no finding of severity error, 1 with one,
2 for a usage or settings error, 130 / 143 when stopped by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import jdl
from jdl._cli.models import build_model
from jdl._cli.signals import DeferSignals, Stopped, exit_status
from jdl._core.files import atomic_path, atomic_write_text


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _settings_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers on the command line, if anything."""
    for name in ("batch_size", "steps"):
        value = getattr(args, name)
        if value < 1:
            return f"--{name.replace('_', '-')} must be a positive integer; got {value}."
    if not (math.isfinite(args.lr) and args.lr > 0):
        return f"--lr must be a finite positive number; got {args.lr}."
    return None


def _diagnose(args: argparse.Namespace, signals: DeferSignals) -> int:
    if problem := _settings_error(args):
        return _fail(problem)
    try:
        source = jdl.data.load(args.dataset, split="train", data_dir=args.data_dir)
        info = jdl.data.dataset_info(args.dataset, data_dir=args.data_dir)
    except Exception as err:  # unknown/unprepared dataset: the data layer's message says why
        return _fail(str(err))
    classification = info.num_classes is not None
    num_outputs = info.num_classes if classification else int(math.prod(info.y_shape) or 1)
    try:
        model = build_model(args.model, info.x_shape, num_outputs)
    except ValueError as err:
        return _fail(str(err))
    loss = "cross_entropy" if classification else "mse"
    print(
        f"Diagnosing {args.model} on {args.dataset} with {args.optimizer} lr={args.lr:g} "
        f"({min(args.batch_size, len(source))} examples sampled)",
        flush=True,
    )
    signals.check("before the diagnosis")
    report = jdl.analysis.diagnose(
        model,
        jdl.data.as_arrays(source),
        loss,
        optimizer=(args.optimizer, args.lr),
        batch_size=args.batch_size,
        overfit_steps=args.steps,
        seed=args.seed,
    )
    print(report, flush=True)
    if args.json:
        atomic_write_text(Path(args.json), report.to_json(indent=2) + "\n")
        print(f"report written to {args.json}")
    if args.plot:
        fig = report.plot(title=f"{args.model} on {args.dataset}")
        suffix = Path(args.plot).suffix.lstrip(".") or "png"
        with atomic_path(args.plot) as tmp:
            fig.savefig(tmp, format=suffix, dpi=100)
        print(f"figure written to {args.plot}")
    return 1 if any(f.severity == "error" for f in report.findings) else 0


def run(args: argparse.Namespace, signals: DeferSignals) -> int:
    """Run ``python -m jdl diagnose`` with the parsed ``args``; return the exit status.

    Args:
        args: the parsed command line (:func:`jdl._cli.parser.build_parser`).
        signals: the deferred-signal handler of the command.

    Returns:
        0 with no finding of severity error, 1 with one, 2 for a settings error (or an
        unknown dataset or model), 130 / 143 when stopped by SIGINT / SIGTERM.
    """
    try:
        return _diagnose(args, signals)
    except Stopped as err:
        print(f"{err}: nothing was written", file=sys.stderr)
        return exit_status(err.signum)
