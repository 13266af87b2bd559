"""The ``python -m jdl`` command line.

``python -m jdl train`` trains a model on a dataset with :func:`jdl.fit` and writes a run
directory::

    runs/mnist1d-cnn-20261122-101500/
        config.json      every setting, the model, its parameter count, versions, devices
        history.json     per-epoch metrics (jdl.train.History.to_json)
        history.csv      the same, one row per epoch
        history.png      loss and accuracy curves
        results.json     final test metrics, best test accuracy and its epoch (a number
                         that is NaN or infinite is written as null)
        checkpoints/     the final TrainState (Orbax), resumable with --resume

``--resume`` continues the run in ``--out`` exactly: ``--steps 50`` then ``--steps 100
--resume`` ends as ``--steps 100`` would have. Any setting but the length (``--steps``,
``--epochs``) must be the checkpoint's (the run is refused with the differences listed),
and so must the length too when the learning rate follows a schedule over it. Training
that produces a NaN or infinite loss stops there, writes the run directory (no checkpoint
of non-finite parameters) and exits with status 1; with ``--debug`` it stops at the first
step with a NaN or inf anywhere (:func:`jdl.fit` ``debug=True``), prints which batch, layer
and parameter went non-finite first, and exits with status 1. Ctrl-C (SIGINT) or SIGTERM stops
training at the next step boundary, saves a checkpoint of that step (resumable exactly with
``--resume``), prints one line saying where, and exits with status 130 (SIGINT) or 143
(SIGTERM); a second Ctrl-C stops at once.

With no arguments it trains the MNIST-1D paper's CNN on the bundled MNIST-1D with the
paper's setup (Adam, learning rate 1e-2, batch 100, 6,000 steps) and prints its test
accuracy (about 94 %). ``python -m jdl train --help`` lists the options.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jdl._core.files import atomic_path, atomic_write_text


def _mnist1d_cnn(x_shape, n):
    import jdl

    if len(x_shape) == 1 or (len(x_shape) == 2 and x_shape[-1] <= 4):
        return jdl.nn.get_model("mnist1d_cnn", num_outputs=n)
    return jdl.nn.CNN(
        features=(32, 64), kernel_size=3, pool="max", dense=(128,), ndim=2, num_outputs=n
    )


def _recurrent(cell: str) -> Callable[[tuple[int, ...], int], Any]:
    def build(x_shape, n):
        import jdl

        if len(x_shape) not in (1, 2):
            raise ValueError(
                f"Model '{cell}' reads sequences: inputs of shape (time,) or (time, features) "
                f"per example; this dataset's inputs have shape {tuple(x_shape)}."
            )
        return jdl.nn.get_model("mnist1d_gru", num_outputs=n, cell=cell)

    return build


def _registered(name: str) -> Callable[[tuple[int, ...], int], Any]:
    def build(x_shape, n):
        import jdl

        return jdl.nn.get_model(name, num_outputs=n)

    return build


_MODELS: dict[str, Callable[[tuple[int, ...], int], Any]] = {
    "logistic": _registered("mnist1d_logistic"),
    "mlp": _registered("mnist1d_mlp"),
    "cnn": _mnist1d_cnn,
    "gru": _recurrent("gru"),
    "lstm": _recurrent("lstm"),
    "rnn": _recurrent("simple"),
}
"""Model names of ``python -m jdl train --model`` -> builder ``(x_shape, num_outputs)``.

The MNIST-1D paper's models, from :func:`jdl.nn.get_model`: ``logistic``
(``"mnist1d_logistic"``, one linear layer); ``mlp`` (``"mnist1d_mlp"``, two ReLU layers of
100 units); ``cnn``: ``"mnist1d_cnn"`` (the 1-D CNN) for sequences, a small 2-D CNN (32 and
64 channels, max pooling, a 128-unit dense layer) for images; ``gru`` / ``lstm`` / ``rnn``:
``"mnist1d_gru"`` with that cell (bidirectional, 6 units per direction, head on every
step)."""


def _build_model(name: str, x_shape: Sequence[int], num_outputs: int):
    """The model ``name`` of :data:`_MODELS` for inputs of shape ``x_shape`` (one example).

    Raises:
        ValueError: for an unknown name, or a model that cannot read such inputs.
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(_MODELS)}.")
    return _MODELS[name](tuple(x_shape), num_outputs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jdl",
        description="jdl: build, train and understand neural networks in JAX.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a model on a dataset and write a run directory",
        description=(
            "Train a model with jdl.fit and write a run directory (config.json, "
            "history.json/.csv, history.png, results.json, checkpoints/). With no options: "
            "the MNIST-1D paper's CNN on the bundled MNIST-1D, Adam 1e-2, batch 100, 6000 "
            "steps (about 94 percent test accuracy)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--model", default="cnn", choices=sorted(_MODELS), help="the model")
    train.add_argument(
        "--dataset",
        default="mnist1d",
        help="a bundled dataset (iris, digits, mnist1d, coffee) or a prepared TFDS name",
    )
    train.add_argument("--data-dir", default=None, help="where datasets are cached")
    train.add_argument(
        "--optimizer",
        default="adam",
        choices=["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"],
        help="the optimiser (jdl.train.optimizer)",
    )
    train.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    train.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine", "warmup_cosine", "step"],
        help="learning-rate schedule",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the training set")
    length.add_argument(
        "--steps", type=int, default=None, help="optimiser steps (default 6000 without --epochs)"
    )
    train.add_argument("--batch-size", type=int, default=100, help="global batch size")
    train.add_argument(
        "--strategy",
        default=None,
        choices=["jit", "sharded", "pmap"],
        help="data parallelism (default: jit on one device, sharded on several)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of parameters and shuffling")
    train.add_argument(
        "--out", default=None, help="run directory (default: runs/<dataset>-<model>-<time>)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="also checkpoint every this many epochs (the final state is always saved)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly where its checkpoint stopped (only --steps "
        "or --epochs may change, to train longer)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--debug",
        action="store_true",
        help="check every step on the device for NaN/inf (inputs, layer outputs, loss, "
        "gradients, updated parameters) and stop at the first, naming its batch, layer and "
        "parameter (jdl.fit(debug=True); slower: for finding a divergence)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace) -> int:
    import jax

    import jdl

    for name in ("epochs", "steps", "batch_size", "checkpoint_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return _fail(f"--{name.replace('_', '-')} must be a positive integer; got {value}.")
    if not (math.isfinite(args.lr) and args.lr > 0):  # NaN and inf too: they train to NaN
        return _fail(f"--lr must be a finite positive number; got {args.lr}.")
    try:
        info = jdl.data.dataset_info(args.dataset, data_dir=args.data_dir)
        train = jdl.data.load(args.dataset, split="train", data_dir=args.data_dir)
        test_split = "test" if "test" in info.splits else None
        test = (
            jdl.data.load(args.dataset, split=test_split, data_dir=args.data_dir)
            if test_split
            else None
        )
    except Exception as err:  # unknown/unprepared dataset: the data layer's message says why
        return _fail(str(err))
    classification = info.num_classes is not None
    num_outputs = info.num_classes if classification else int(math.prod(info.y_shape) or 1)
    try:
        model = _build_model(args.model, info.x_shape, num_outputs)
    except ValueError as err:
        return _fail(str(err))
    loss = "cross_entropy" if classification else "mse"
    steps = args.steps if args.steps is not None or args.epochs is not None else 6000

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/{args.dataset}-{args.model}-{stamp}")
    ckpt_dir = out / "checkpoints"
    if args.resume and not ckpt_dir.exists():
        return _fail(f"--resume: no checkpoints in {ckpt_dir}; nothing to resume from.")
    if not args.resume and out.exists() and any(out.iterdir()):
        return _fail(f"{out} exists and is not empty; choose another --out or pass --resume.")

    steps_per_epoch = len(train) // args.batch_size
    epochs_planned = args.epochs or math.ceil(steps / max(steps_per_epoch, 1))
    total = steps or args.epochs * steps_per_epoch
    if args.resume and (problem := _schedule_change(out / "config.json", args, total)):
        return _fail(problem)
    out.mkdir(parents=True, exist_ok=True)
    every = args.checkpoint_every or epochs_planned
    optimizer = jdl.train.optimizer(
        args.optimizer,
        args.lr,
        schedule=args.schedule,
        total_steps=total,
    )
    config = {
        "command": "python -m jdl " + " ".join(args.argv),
        "model": args.model,
        "model_repr": repr(model),
        "dataset": args.dataset,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "schedule": args.schedule,
        "epochs": args.epochs,
        "steps": steps,
        "total_steps": total,
        "batch_size": args.batch_size,
        "strategy": args.strategy,
        "seed": args.seed,
        "loss": loss,
        "jdl_version": jdl.__version__,
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()],
    }
    print(
        f"Training {args.model} on {args.dataset} ({len(train)} examples) with "
        f"{args.optimizer} lr={args.lr:g}, batch {args.batch_size}, "
        f"{f'{args.epochs} epochs' if args.epochs else f'{steps} steps'}; run directory {out}"
    )
    try:
        history = jdl.fit(
            model,
            train,
            batch_size=args.batch_size,
            optimizer=optimizer,
            loss=loss,
            epochs=args.epochs,
            steps=steps,
            validation=test,
            callbacks=[
                jdl.train.callbacks.TerminateOnNaN(),
                jdl.train.Checkpoint(ckpt_dir, every=every, max_to_keep=1),
            ],
            strategy=args.strategy,
            seed=args.seed,
            verbose=0 if args.quiet else 1,
            resume=args.resume,
            debug=args.debug,
        )
    except jdl.train.NonFiniteError as err:  # --debug found where training diverged
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:
        return _fail(str(err))
    except (KeyboardInterrupt, SystemExit) as err:
        if not hasattr(err, "checkpoints"):  # not fit's stop on a signal: as it is
            raise
        # SIGINT / SIGTERM: fit stopped at a step boundary and saved; one line, then the
        # shell's status for that signal (130, 143).
        print(f"{err.message}; continue with --resume --out {out}", file=sys.stderr)
        return 130 if err.signal_name == "SIGINT" else 143

    config["parameters"] = jdl.nn.count_params(history.variables["params"])
    _write_json(out / "config.json", config)
    history.to_json(out / "history.json")
    history.to_csv(out / "history.csv")
    _plot(history, out / "history.png", f"{args.model} on {args.dataset}")

    results: dict[str, Any] = {"epochs": history.epochs[-1], "steps": history.steps[-1]}
    if test is not None:
        final = jdl.evaluate(
            model, history.variables, test, loss=loss, strategy=args.strategy, batch_size=256
        )
        results["test"] = final
        if classification:
            best_epoch, best = history.best("val_accuracy")
            results["best_test_accuracy"] = best
            results["best_epoch"] = best_epoch
            print(
                f"test accuracy: {100 * final['accuracy']:.2f}% "
                f"(best {100 * best:.2f}% at epoch {best_epoch}); "
                f"test loss {final['loss']:.4f}"
            )
        else:
            print(f"test loss ({loss}): {final['loss']:.5g}")
    _write_json(out / "results.json", results)
    print(
        f"wrote {out}/: config.json history.json history.csv history.png results.json checkpoints/"
    )
    if not all(math.isfinite(v) for v in history.metrics.get("loss", ())):
        return _diverged(history, ckpt_dir)
    return 0


def _diverged(history: Any, ckpt_dir: Path) -> int:
    """Report a run whose training loss became NaN or infinite; the exit status (1)."""
    import jdl

    why = history.stop_reason or "the training loss is NaN or infinite"
    latest = jdl.train.latest_step(ckpt_dir)
    kept = f"the last checkpoint is step {latest}" if latest is not None else "no checkpoint"
    print(
        f"error: training diverged: {why}; {kept} (non-finite parameters are never saved). "
        "Try a lower --lr.",
        file=sys.stderr,
    )
    return 1


def _schedule_change(config_path: Path, args: argparse.Namespace, total: int) -> str | None:
    """Why ``--resume`` cannot change the run's length (a schedule spans it), if so."""
    if args.schedule == "constant" or not config_path.exists():
        return None
    saved = json.loads(config_path.read_text()).get("total_steps")
    if saved is None or saved == total:
        return None
    return (
        f"--resume: the run in {config_path.parent} planned {saved} steps for its "
        f"{args.schedule!r} learning-rate schedule; this run asks for {total}, which would "
        "change the schedule under the steps already trained. Resume with the same length, "
        "or train with --schedule constant to extend a run."
    )


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinite floats as ``None`` (``null``: strict JSON)."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _plot(history, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = history.plot()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:  # `python -m jdl` alone: the main job
        argv = ["train"]
        args = parser.parse_args(argv)
    args.argv = argv
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
