"""The argument parser of ``python -m jdl``.

It imports nothing heavy (no JAX, Flax, TFDS or the rest of jdl): ``--help`` and usage
errors answer at once. Every option's help states its default once. An unknown option is
answered with the closest valid ones (``--modle``: did you mean ``--model``?), and so is an
unknown ``--model``, ``--optimizer``, ``--schedule`` or ``--strategy`` value (an unknown
``--dataset`` is answered by the data layer, which knows the TFDS catalog).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence
from typing import Any

from jdl._cli.models import MODELS
from jdl._cli.sharding_options import add_sharding_options

PROG = "python -m jdl"

#: The optimiser names of ``--optimizer`` (the keys of ``jdl.train.optim.OPTIMIZERS``; a
#: test keeps them equal), listed here so that the parser need not import jdl.train.
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")
#: The learning-rate schedules of ``--schedule`` (``jdl.train.optim.SCHEDULES``).
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")
#: The strategies of ``--strategy`` (``jdl.train.STRATEGIES``; a test keeps them equal).
STRATEGIES = ("jit", "sharded", "pmap", "fsdp")
#: The length of a run given neither ``--steps`` nor ``--epochs`` (the MNIST-1D paper's).
DEFAULT_STEPS = 6000
#: The computation dtypes of ``--precision`` (``jdl.train.PRECISIONS``).
PRECISIONS = ("float32", "bfloat16", "float16")
#: ``--verbose`` levels (``jdl.fit(verbose=...)``).
VERBOSE_LEVELS = (0, 1, 2)


def closest(word: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The (at most ``n``) candidates closest to ``word``, best first (:mod:`difflib`)."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)


def _either(names: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def one_of(what: str, names: Sequence[str]) -> Callable[[str], str]:
    """An argparse ``type`` that accepts only ``names``, suggesting the closest on a miss.

    Args:
        what: what a value is, for the message (``"model"``).
        names: the valid values.

    Returns:
        The converter: the value itself, or :class:`argparse.ArgumentTypeError` naming the
        value, the closest valid ones and all valid ones.
    """

    def check(value: str) -> str:
        if value in names:
            return value
        near = closest(value, names)
        hint = f"; did you mean {_either([repr(n) for n in near])}?" if near else ""
        raise argparse.ArgumentTypeError(
            f"unknown {what} {value!r}{hint} (expected one of: {', '.join(names)})"
        )

    check.__name__ = what
    return check


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` that suggests the closest option to an unknown one.

    Python 3.11's argparse only says "unrecognized arguments"; this one names, for each
    unknown ``--option``, the closest options of the command it was given to.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, Parser] = {}

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        """Parse ``args`` as argparse does, failing on unknown ones with suggestions."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.commands.get(getattr(parsed, "command", None) or "", self)
            command.error(command.unrecognized(extras))
        return parsed

    def unrecognized(self, extras: Sequence[str]) -> str:
        """The error message for the arguments ``extras`` this parser does not know."""
        options = [s for action in self._actions for s in action.option_strings]
        hints = []
        for token in extras:
            if not token.startswith("-"):
                continue
            near = closest(token.split("=", 1)[0], options)
            if near:
                hints.append(f"{token.split('=', 1)[0]}: did you mean {_either(near)}?")
        message = f"unrecognized arguments: {' '.join(extras)}"
        return f"{message} ({'; '.join(hints)})" if hints else message


def _model_and_data_options(command: Parser, model: str, dataset: str) -> None:
    """``--model``, ``--dataset`` and ``--data-dir``, shared by ``train`` and ``diagnose``
    (their defaults differ)."""
    _choice(command, "--model", "model", sorted(MODELS), model, "the model")
    command.add_argument(
        "--dataset",
        default=dataset,
        help="a bundled dataset (iris, digits, mnist1d, coffee) or a prepared TFDS catalog "
        f"name (default: {dataset})",
    )
    command.add_argument(
        "--data-dir",
        default=None,
        help="where datasets are stored (default: $JDL_DATA_DIR, else jdl's cache folder)",
    )


def _train_options(train: Parser) -> None:
    """The options of ``python -m jdl train``."""
    _model_and_data_options(train, "cnn", "mnist1d")
    train.add_argument(
        "--download",
        action="store_true",
        help="download and prepare a TFDS catalog dataset that is not prepared yet, into the "
        "data directory (needs network access; bundled datasets never need it)",
    )
    _choice(train, "--optimizer", "optimizer", OPTIMIZERS, "adam", "the optimiser")
    train.add_argument("--lr", type=float, default=1e-2, help="learning rate (default: 0.01)")
    _choice(train, "--schedule", "schedule", SCHEDULES, "constant", "learning-rate schedule")
    length = train.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=int, default=None, help="passes over the training set (default: none)"
    )
    length.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimiser steps (default: {DEFAULT_STEPS} without --epochs)",
    )
    train.add_argument(
        "--batch-size", type=int, default=100, help="global batch size (default: 100)"
    )
    train.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="the fraction of the training set held out as the validation set: evaluated "
        "after every epoch, it is what the best epoch is chosen on; the test set is evaluated "
        "once, at the end, on the final model; 0: no validation (default: 0.1)",
    )
    _choice(
        train, "--strategy", "strategy", STRATEGIES, None,
        "data parallelism, or fsdp: parameters and optimiser state sharded over the devices "
        "too (default: jit on one device, sharded on several)",
    )  # fmt: skip
    train.add_argument(
        "--seed", type=int, default=0, help="seed of parameters and shuffling (default: 0)"
    )
    train.add_argument(
        "--out", default=None, help="run directory (default: runs/<dataset>-<model>-<time>)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="also checkpoint every this many epochs (default: only the final state, which "
        "is always saved)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly where its checkpoint stopped (only --steps "
        "or --epochs may change, to train longer)",
    )
    shown = train.add_mutually_exclusive_group()
    shown.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=VERBOSE_LEVELS,
        help="0: nothing while training; 1: a progress bar and a line per epoch; 2: only the "
        "line per epoch, for logs (default: 1)",
    )
    shown.add_argument("--quiet", action="store_true", help="the same as --verbose 0")
    train.add_argument(
        "--debug",
        action="store_true",
        help="check every step on the device for NaN/inf (inputs, layer outputs, loss, "
        "gradients, updated parameters) and stop at the first, naming its batch, layer and "
        "parameter (jdl.fit(debug=True); slower: for finding a divergence)",
    )
    _choice(
        train, "--precision", "precision", PRECISIONS, "float32",
        "the computation dtype: float32, or bfloat16 / float16 with float32 parameters, loss "
        "and BatchNorm statistics (float16 with dynamic loss scaling; jdl.fit(precision=...))",
    )  # fmt: skip
    train.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="keep the compiled programs in DIR (JAX's persistent compilation cache) and "
        "reuse them in later runs, which then start faster (default: $JDL_COMPILE_CACHE, "
        "else none)",
    )
    _cluster_options(train)
    add_sharding_options(train)


def coordinator(value: str) -> str:
    """An argparse ``type`` for ``--coordinator``: ``HOST:PORT`` with a port in 1..65535.

    Args:
        value: the option's value.

    Returns:
        ``value`` unchanged, or :class:`argparse.ArgumentTypeError` naming what was expected
        and what was given.
    """
    host, _, port = value.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return value
    raise argparse.ArgumentTypeError(
        f"expected HOST:PORT with a port in 1..65535 (e.g. 10.0.0.1:1234); got {value!r}"
    )


def _cluster_options(train: Parser) -> None:
    """The options of ``python -m jdl train`` for several processes (``jax.distributed``)."""
    cluster = train.add_argument_group(
        "several processes (jax.distributed)",
        "Every process of the job runs the same command; they train as one data-parallel "
        "run over all their devices, in one run directory that process 0 names and writes "
        "(checkpoints are written by every process: the directory must be on storage they "
        "all see).",
    )
    cluster.add_argument(
        "--distributed",
        action="store_true",
        help="join the other processes with jax.distributed.initialize() before anything "
        "else; it detects SLURM, Open MPI, Kubernetes and Cloud TPU jobs by itself, or takes "
        "--coordinator, --num-processes and --process-id (default: one process)",
    )
    cluster.add_argument(
        "--coordinator",
        type=coordinator,
        default=None,
        metavar="HOST:PORT",
        help="with --distributed: the address of process 0, where the others connect "
        "(default: detected from the cluster)",
    )
    cluster.add_argument(
        "--num-processes",
        type=int,
        default=None,
        metavar="N",
        help="with --distributed: the number of processes (default: detected)",
    )
    cluster.add_argument(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="with --distributed: this process's index, 0 to N-1 (default: detected)",
    )


def cluster_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the cluster options of parsed ``train`` arguments, if anything.

    Args:
        args: the parsed ``python -m jdl train`` arguments.

    Returns:
        The message (``None`` when they are consistent).
    """
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("coordinator", "num_processes", "process_id")
        if getattr(args, name) is not None
    ]
    if given and not args.distributed:
        return (
            f"{_either(given)} given without --distributed (they set up jax.distributed); "
            "add --distributed."
        )
    n, i = args.num_processes, args.process_id
    if n is not None and n < 1:
        return f"--num-processes must be a positive integer; got {n}."
    if i is not None and (i < 0 or (n is not None and i >= n)):
        upper = f"{n - 1}" if n is not None else "N-1"
        return f"--process-id must be in 0..{upper}; got {i}."
    return None


def _choice(
    parser: Parser, option: str, what: str, names: Sequence[str], default: str | None, help: str
) -> None:
    """Add ``option`` taking one of ``names`` (suggesting the closest on a miss)."""
    if default is not None:
        help = f"{help} (default: {default})"
    parser.add_argument(
        option,
        default=default,
        type=one_of(what, names),
        metavar="{" + ",".join(names) + "}",
        help=help,
    )


_TRAIN_EPILOG = (
    "Ctrl-C (SIGINT) or SIGTERM, at any moment, stops the run with one line saying where and "
    "what the run directory holds (config.json from the start, history.json after every "
    "epoch, a checkpoint of the step training stopped at, resumable with --resume), and exits "
    "with status 130 (SIGINT) or 143 (SIGTERM); a second Ctrl-C stops at once. Exit status 2: "
    "a usage or settings error (nothing is written); 1: training diverged."
)


_DIAGNOSE_EPILOG = (
    "Exit status 0: no finding of severity error (warnings are printed but pass); 1: at "
    "least one error (the network will not train well as set up); 2: a usage or settings "
    "error."
)


def _diagnose_options(diagnose: Parser) -> None:
    """The options of ``python -m jdl diagnose``."""
    _model_and_data_options(diagnose, "mlp", "iris")
    _choice(diagnose, "--optimizer", "optimizer", OPTIMIZERS, "adam", "the optimiser diagnosed")
    diagnose.add_argument(
        "--lr", type=float, default=1e-2, help="the learning rate diagnosed (default: 0.01)"
    )
    diagnose.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="examples sampled from the training set for the analyses (default: 256)",
    )
    diagnose.add_argument(
        "--steps", type=int, default=300, help="steps of the overfit check (default: 300)"
    )
    diagnose.add_argument(
        "--seed", type=int, default=0, help="seed of parameters and sampling (default: 0)"
    )
    diagnose.add_argument(
        "--json", default=None, metavar="FILE", help="also save the report as JSON (default: none)"
    )
    diagnose.add_argument(
        "--plot", default=None, metavar="FILE", help="also save the report's figure (default: none)"
    )


def build_parser() -> Parser:
    """The parser of ``python -m jdl``: the ``train`` and ``diagnose`` commands.

    Returns:
        The top-level parser; ``parser.commands["train"]`` is the ``train`` command's
        (``parser.commands["diagnose"]`` the ``diagnose`` command's).
    """
    parser = Parser(
        prog=PROG,
        description="jdl: build, train and understand neural networks in JAX.",
        epilog="With no command, this help is printed and the exit status is 2 (a usage "
        "error). 'python -m jdl train' with no options trains the MNIST-1D paper's CNN.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a model on a dataset and write a run directory",
        description=(
            "Train a model with jdl.fit and write a run directory (config.json, "
            "history.json/.csv, history.png, results.json, checkpoints/). With no options: "
            f"the MNIST-1D paper's CNN on the bundled MNIST-1D, Adam 1e-2, batch 100, "
            f"{DEFAULT_STEPS} steps (about 94 percent test accuracy)."
        ),
        epilog=_TRAIN_EPILOG,
    )
    _train_options(train)
    parser.commands["train"] = train
    diagnose = commands.add_parser(
        "diagnose",
        help="say why a model does (not) train on a dataset: jdl.analysis.diagnose",
        description=(
            "Run jdl.analysis.diagnose on a sample of the training set: labels against the "
            "outputs, the loss at initialisation, gradient flow and activations, depth "
            "without skips, the overfit-a-tiny-batch check and the learning-rate range test "
            "with the given optimiser, and print the findings, most severe first."
        ),
        epilog=_DIAGNOSE_EPILOG,
    )
    _diagnose_options(diagnose)
    parser.commands["diagnose"] = diagnose
    return parser
