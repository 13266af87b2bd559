"""``python -m jdl train``: train a model with :func:`jdl.fit` and write a run directory.

Settings are checked against the dataset (e.g. the batch size against the number of
training examples) before the run directory is created, so a refused run writes nothing.
The directory then gets config.json at once and history.json after every epoch
(:mod:`jdl._cli.rundir`), and a signal at any moment stops the run at a safe point
(:mod:`jdl._cli.signals`, :mod:`jdl.train.interrupt`) with one line saying where and what
the directory holds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import jax

import jdl
from jdl._cli import cluster
from jdl._cli.models import build_model
from jdl._cli.parser import DEFAULT_STEPS
from jdl._cli.rundir import (
    CONFIG,
    HISTORY,
    MODEL,
    HistoryWriter,
    RunDirectory,
    plural,
    write_json,
)
from jdl._cli.sharding_options import mesh_and_rules
from jdl._cli.signals import DeferSignals, Stopped, exit_status
from jdl.train.callbacks import Callback


def _say(*values: Any, **kwargs: Any) -> None:
    """``print`` on process 0 only (every process runs the command; one speaks)."""
    if cluster.is_primary():
        print(*values, **kwargs)


def _fail(message: str) -> int:
    _say(f"error: {message}", file=sys.stderr)
    return 2


class _SafePoint(Callback):
    """Stops ``fit`` before its first step if a signal came while it set up (compiling the
    state), and marks the training loop, where ``fit`` itself defers signals."""

    def __init__(self, signals: DeferSignals) -> None:
        self.signals = signals

    def on_train_begin(self, run: Any) -> None:
        self.signals.check("before the first step, while compiling")
        self.signals.urgent = True  # from here a signal that reaches us is a second one


def _settings_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers on the command line, if anything."""
    for name in ("epochs", "steps", "batch_size", "checkpoint_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be a positive integer; got {value}."
    if not (math.isfinite(args.lr) and args.lr > 0):  # NaN and inf too: they train to NaN
        return f"--lr must be a finite positive number; got {args.lr}."
    if not 0 <= args.validation_split < 1:  # NaN fails this too
        return f"--validation-split must be in [0, 1); got {args.validation_split}."
    return None


def _compile_cache(args: argparse.Namespace) -> str | None:
    """The compilation cache directory: ``--compile-cache``, else ``$JDL_COMPILE_CACHE``."""
    return args.compile_cache or os.environ.get("JDL_COMPILE_CACHE") or None


def _load_data(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """The dataset's info and its train, validation and test sources (``None`` where absent).

    The validation set is the last ``--validation-split`` of the training split (a TFDS
    split slice), so the test set is only evaluated once, at the end: choosing the best
    epoch on the test set would be selection on the test set.
    """
    kwargs = {"data_dir": args.data_dir, "download": args.download}
    train = jdl.data.load(args.dataset, split="train", **kwargs)  # prepares it if asked
    info = jdl.data.dataset_info(args.dataset, data_dir=args.data_dir)
    test = jdl.data.load(args.dataset, split="test", **kwargs) if "test" in info.splits else None
    held_out = round(len(train) * args.validation_split)
    validation = None
    if held_out:
        kept = len(train) - held_out
        validation = jdl.data.load(args.dataset, split=f"train[{kept}:]", **kwargs)
        train = jdl.data.load(args.dataset, split=f"train[:{kept}]", **kwargs)
    return info, train, validation, test


def _directory_error(args: argparse.Namespace, out: Path) -> str | None:
    """Why ``out`` cannot take this run (``--resume`` without checkpoints, not empty)."""
    ckpt_dir = out / "checkpoints"
    if args.resume and not ckpt_dir.exists():
        return f"--resume: no checkpoints in {ckpt_dir}; nothing to resume from."
    if args.resume or not out.exists() or _left_before_training(out):
        return None
    if any(out.iterdir()):
        return f"{out} exists and is not empty; choose another --out or pass --resume."
    return None


def _left_before_training(out: Path) -> bool:
    """Whether ``out`` holds only what a run stopped before its first step left (it may be
    reused): config.json, an empty history.json, no checkpoint."""
    names = {p.name for p in out.iterdir()} - {"checkpoints"}
    if not names <= {CONFIG, HISTORY} or jdl.train.latest_step(out / "checkpoints") is not None:
        return False
    return RunDirectory(out, resume=False).epochs_recorded() in (0, None)


def _held_out(validation: Any) -> str:
    """``", 400 held out for validation"`` (or nothing without a validation set)."""
    return "" if validation is None else f", {len(validation)} held out for validation"


def _config(args: argparse.Namespace, model: Any, loss: str, steps: int | None, total: int):
    return {
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
        "validation_split": args.validation_split,
        "strategy": args.strategy,
        "seed": args.seed,
        "precision": args.precision,
        "loss": loss,
        "jdl_version": jdl.__version__,
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "processes": jax.process_count(),
        "devices": [str(d) for d in jax.devices()],
    }


def _total(args: argparse.Namespace, plan: tuple[Any, ...]) -> int:
    """The steps the run trains for in all (``--steps``, or ``--epochs`` full epochs)."""
    train, steps = plan[1], plan[6]
    return steps or args.epochs * (len(train) // args.batch_size)


def _schedule_change(config_path: Path, args: argparse.Namespace, total: int) -> str | None:
    """Why ``--resume`` cannot change the run's length (a schedule spans it), if so."""
    if args.schedule == "constant" or not config_path.exists():
        return None
    saved = json.loads(config_path.read_text()).get("total_steps")
    if saved is None or saved == total:
        return None
    return (
        f"--resume: the run in {config_path.parent} planned {plural(saved, 'step')} for its "
        f"{args.schedule!r} learning-rate schedule; this run asks for {total}, which would "
        "change the schedule under the steps already trained. Resume with the same length, "
        "or train with --schedule constant to extend a run."
    )


class TrainCommand:
    """One ``python -m jdl train`` run: :meth:`run` returns the exit status.

    Args:
        args: the parsed command line (with ``argv``, the arguments as given).
        signals: the deferred SIGINT/SIGTERM handling the run checks at its safe points.
    """

    def __init__(self, args: argparse.Namespace, signals: DeferSignals) -> None:
        self.args = args
        self.signals = signals
        self.rundir: RunDirectory | None = None

    def run(self) -> int:
        """Train and write the run directory; the exit status (0, 1, 2, 130 or 143)."""
        self.signals.describe = self._written
        try:
            return self._run()
        except Stopped as err:
            print(f"stopped by {err.signal_name} {err.where}: {self._written()}", file=sys.stderr)
            return exit_status(err.signum)

    def _written(self) -> str:
        """What the run has written so far (``"runs/x holds config.json, ..."``)."""
        if self.rundir is None:
            return "nothing written (the run directory was not created yet)"
        return f"{self.rundir.path} holds {self.rundir.holds()}"

    def _run(self) -> int:
        args = self.args
        problem, plan = self._plan()
        # One run directory for all processes: process 0's name (its clock) is everyone's.
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(cluster.gather_text(args.out or f"runs/{args.dataset}-{args.model}-{stamp}")[0])
        if problem is None:  # every process checks before process 0 creates anything
            problem = _directory_error(args, out)
        if problem is None and args.resume:
            problem = _schedule_change(out / CONFIG, args, _total(args, plan))
        if problem := cluster.agree(problem):  # one refuses: all do, none waits for it
            return _fail(problem)
        info, train, validation, test, model, loss, steps = plan
        total = _total(args, plan)
        classification = info.num_classes is not None
        config = _config(args, model, loss, steps, total)
        self.rundir = RunDirectory(out, resume=args.resume, writes=cluster.is_primary())
        self.rundir.create(config)
        length = plural(args.epochs, "epoch") if args.epochs else plural(steps, "step")
        _say(
            f"Training {args.model} on {args.dataset} ({plural(len(train), 'example')}"
            f"{_held_out(validation)}) with "
            f"{args.optimizer} lr={args.lr:g}, batch {args.batch_size}, {length}; "
            f"run directory {out}",
            flush=True,
        )
        if not args.quiet and args.verbose:
            _say(jdl.nn.summary(model, (1, *info.x_shape)), flush=True)
        self.signals.check("before training")
        epochs_planned = args.epochs or math.ceil(steps / (len(train) // args.batch_size))
        history = self._fit(model, train, validation, loss, steps, total, epochs_planned)
        if isinstance(history, int):
            return history
        config["parameters"] = jdl.nn.count_params(history.variables["params"])
        return self._finish(history, config, model, test, loss, classification)

    def _plan(self) -> tuple[str | None, Any]:
        """Check the settings against the dataset; ``(problem, None)`` or ``(None, plan)``,
        the plan being ``(info, train, validation, test, model, loss, steps)``."""
        args = self.args
        if problem := _settings_error(args):
            return problem, None
        try:
            info, train, validation, test = _load_data(args)
        except Exception as err:  # unknown/unprepared dataset: the data layer's message says why
            return str(err), None
        if args.batch_size > len(train):
            return (
                f"--batch-size {args.batch_size} is larger than the training set: "
                f"{args.dataset} has {plural(len(train), 'training example')}"
                f"{_held_out(validation)}. Choose --batch-size {len(train)} or less."
            ), None
        classification = info.num_classes is not None
        num_outputs = info.num_classes if classification else int(math.prod(info.y_shape) or 1)
        try:
            model = build_model(args.model, info.x_shape, num_outputs)
        except ValueError as err:
            return str(err), None
        loss = "cross_entropy" if classification else "mse"
        steps = args.steps if args.steps is not None or args.epochs is not None else DEFAULT_STEPS
        return None, (info, train, validation, test, model, loss, steps)

    def _fit(self, model, train, validation, loss, steps, total, epochs_planned) -> Any:
        """Run :func:`jdl.fit`; the history, or the exit status of a stopped or refused run."""
        args, rundir = self.args, self.rundir
        optimizer = jdl.train.optimizer(
            args.optimizer, args.lr, schedule=args.schedule, total_steps=total
        )
        callbacks = [
            _SafePoint(self.signals),
            jdl.train.callbacks.TerminateOnNaN(),
            *([HistoryWriter(rundir.path / HISTORY)] if rundir.writes else []),
            jdl.train.Checkpoint(
                rundir.checkpoints, every=args.checkpoint_every or epochs_planned, max_to_keep=1
            ),
        ]
        try:
            mesh, rules = mesh_and_rules(args)
            return jdl.fit(
                model, train, batch_size=args.batch_size, optimizer=optimizer, loss=loss,
                epochs=args.epochs, steps=steps, validation=validation, callbacks=callbacks,
                strategy=args.strategy, seed=args.seed,
                verbose=0 if args.quiet else args.verbose, resume=args.resume, debug=args.debug,
                compile_cache=_compile_cache(args), precision=args.precision, mesh=mesh,
                sharding_rules=rules,
            )  # fmt: skip
        except jdl.train.NonFiniteError as err:  # --debug found where training diverged
            _say(f"error: training diverged: {err}", file=sys.stderr)
            return 1
        except (ValueError, TypeError) as err:  # refused before its first step
            if not args.resume:
                rundir.remove_if_untouched()
                self.rundir = None
            return _fail(str(err))
        except (KeyboardInterrupt, SystemExit) as err:
            if not hasattr(err, "checkpoints"):  # not fit's stop on a signal: as it is
                raise
            # fit stopped at a step boundary and saved: one line, the signal's status.
            _say(
                f"{err.message}; {rundir.path} holds {rundir.holds()}; continue with --resume "
                f"--out {rundir.path}",
                file=sys.stderr,
            )
            return 130 if err.signal_name == "SIGINT" else 143
        finally:
            self.signals.urgent = False

    def _finish(self, history, config, model, test, loss, classification) -> int:
        """Write the rest of the run directory after training, checking for signals between
        the files; the exit status."""
        args, rundir, out = self.args, self.rundir, self.rundir.path
        rundir.write_config(config)
        if rundir.writes:
            history.to_json(out / HISTORY)
            history.to_csv(out / "history.csv")
        at = f"after training (step {history.steps[-1]})"
        self.signals.check(at)
        results: dict[str, Any] = {"epochs": history.epochs[-1], "steps": history.steps[-1]}
        if classification and "val_accuracy" in history.metrics:
            best_epoch, best = history.best("val_accuracy")
            results.update(best_epoch=best_epoch, best_val_accuracy=best)
            _say(
                f"validation accuracy: {100 * history.metrics['val_accuracy'][-1]:.2f}% "
                f"(best {100 * best:.2f}% at epoch {best_epoch})",
                flush=True,
            )
        if test is not None:  # once, on the final model: no selection on the test set
            final = jdl.evaluate(
                model, history.variables, test, loss=loss, strategy=args.strategy, batch_size=256
            )
            results["test"] = final
            if classification:
                _say(
                    f"test accuracy (final model): {100 * final['accuracy']:.2f}%; "
                    f"test loss {final['loss']:.4f}",
                    flush=True,
                )
            else:
                _say(f"test loss ({loss}): {final['loss']:.5g}", flush=True)
        if rundir.writes:
            write_json(out / "results.json", results)
        self.signals.check(f"{at}, while evaluating")
        finite = all(math.isfinite(v) for v in history.metrics.get("loss", ()))
        if finite:  # as for the checkpoints, non-finite parameters are never saved
            metadata = {"dataset": args.dataset, "model": args.model, "steps": results["steps"]}
            jdl.save_model(
                out / MODEL, model, history.variables, metadata=metadata, overwrite=True
            )  # fmt: skip  (process 0 writes; all call it)
            self.signals.check(f"{at}, while saving the model")
        rundir.write_plot(history, f"{args.model} on {args.dataset}")
        self.signals.check(f"{at}, while writing history.png")
        _say(f"wrote {out}/: {rundir.holds()}")
        if not finite:
            return _diverged(history, rundir.checkpoints)
        _say(f"final model saved in {out / MODEL}/: jdl.load_model({str(out / MODEL)!r})")
        return 0


def _diverged(history: Any, ckpt_dir: Path) -> int:
    """Report a run whose training loss became NaN or infinite; the exit status (1)."""
    why = history.stop_reason or "the training loss is NaN or infinite"
    latest = jdl.train.latest_step(ckpt_dir)
    kept = f"the last checkpoint is step {latest}" if latest is not None else "no checkpoint"
    _say(
        f"error: training diverged: {why}; {kept} (non-finite parameters are never saved). "
        "Try a lower --lr.",
        file=sys.stderr,
    )
    return 1


def run(args: argparse.Namespace, signals: DeferSignals) -> int:
    """Run ``python -m jdl train`` with the parsed ``args``; the exit status.

    Args:
        args: the parsed command line, with ``argv`` (the arguments as given).
        signals: the active :class:`~jdl._cli.signals.DeferSignals`.

    Returns:
        0 on success, 1 if training diverged, 2 for bad settings, 130 / 143 when stopped by
        SIGINT / SIGTERM.
    """
    return TrainCommand(args, signals).run()
