"""The entry point of ``python -m jdl``: parse the command line, run the command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jdl._cli.parser import PROG, build_parser, cluster_error
from jdl._cli.signals import DeferSignals


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    With no command it prints the help to stderr and returns 2, the status of a usage
    error (argparse's own usage errors raise ``SystemExit(2)``). SIGINT and SIGTERM are
    deferred from the start of a command to its safe points (:mod:`jdl._cli.signals`), so
    the heavy imports (JAX, the data layer) happen under that handling.

    Args:
        argv: the arguments, without the program name.

    Returns:
        The exit status: 0 success, 1 training diverged (``diagnose``: a finding of severity
        error), 2 usage or settings error (``train --distributed``: also no cluster to
        join), 130 / 143 stopped by SIGINT / SIGTERM, 75 a peer process was lost.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print(f"\n{PROG}: error: no command given; choose one of: train, diagnose", file=sys.stderr)
        return 2
    args.argv = argv
    with DeferSignals() as signals:
        if args.command == "diagnose":
            from jdl._cli import diagnose  # JAX and jdl are imported here

            return diagnose.run(args, signals)
        if problem := cluster_error(args):
            parser.commands["train"].error(problem)  # a usage error: exit status 2
        from jdl._cli import cluster  # JAX is imported here

        if problem := cluster.join(args):  # before anything else uses JAX
            print(f"error: {problem}", file=sys.stderr)
            return 2
        from jdl._cli import train  # jdl is imported here, signals deferred

        return train.run(args, signals)
