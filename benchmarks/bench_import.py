"""The cost of importing jdl: wall time and peak memory against ``import jax, flax, optax``.

Each measurement is a fresh Python process (``--child``) that runs one contender's import
statement and reports the wall time of that statement (``time.perf_counter`` around it, so
the interpreter's own start-up is left out), its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and how many modules it loaded. The
contenders:

- ``baseline``: ``import jax, flax, optax`` -- what any Flax/Optax user pays;
- ``jdl_fit``: ``import jdl; jdl.fit`` -- the issue's measure (#13);
- ``first_use``: ``import jdl; jdl.fit; jdl.evaluate; jdl.nn.MLP`` -- a script's first lines;
- ``jdl``: ``import jdl`` alone (imports no JAX: the CLI's ``--help``);
- ``jdl_fit_before`` (with ``--before DIR``): ``import jdl; jdl.fit`` of another copy of jdl
  (e.g. ``git archive <commit> jdl | tar -x -C DIR``), found first on ``PYTHONPATH``.

They run in turn, the order rotated every repeat, ``--repeats`` times each; the medians,
their ratios to ``baseline``, the load average before and after and the versions are printed
and written to ``--json``. Target (issue #13): ``jdl_fit`` at most 1.2x ``baseline`` in time
and in memory.

    python benchmarks/bench_import.py [--repeats 9] [--before DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

#: Each contender's import statement.
CONTENDERS = {
    "baseline": "import jax, flax, optax",
    "jdl_fit": "import jdl; jdl.fit",
    "first_use": "import jdl; jdl.fit; jdl.evaluate; jdl.nn.MLP",
    "jdl": "import jdl",
}


def child(statement: str) -> None:
    """Runs ``statement`` and prints its wall time, peak RSS and module count as JSON."""
    import resource
    import time

    start = time.perf_counter()
    exec(statement, {})
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"s": seconds, "peak_mib": peak_kib / 1024, "modules": len(sys.modules)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", default=None)
    parser.add_argument("--before", default=None, help="a folder holding another copy of jdl")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(CONTENDERS[args.child])
        return
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    names = list(CONTENDERS)
    env = {name: None for name in names}  # None: this process' environment
    if args.before is not None:
        if not os.path.isfile(os.path.join(args.before, "jdl", "__init__.py")):
            parser.error(f"--before must be a folder holding jdl/__init__.py, got {args.before}")
        names.append("jdl_fit_before")
        pythonpath = os.pathsep.join(filter(None, [args.before, os.environ.get("PYTHONPATH")]))
        env["jdl_fit_before"] = {**os.environ, "PYTHONPATH": pythonpath}
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for i in range(args.repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            statement = "jdl_fit" if name == "jdl_fit_before" else name
            cmd = [sys.executable, __file__, "--child", statement]
            out = subprocess.run(
                cmd, check=True, capture_output=True, text=True, env=env[name]
            ).stdout
            run = json.loads(out.strip().splitlines()[-1])
            runs[name].append(run)
            print(f"{name:10s} {run['s']:6.3f} s {run['peak_mib']:7.1f} MiB", flush=True)
    load_after = os.getloadavg()

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    medians = {n: {k: median(n, k) for k in ("s", "peak_mib", "modules")} for n in names}
    base = medians["baseline"]
    ratios = {
        n: {"time": m["s"] / base["s"], "memory": m["peak_mib"] / base["peak_mib"]}
        for n, m in medians.items()
    }
    import flax
    import jax
    import optax

    import jdl

    report = {
        "contenders": CONTENDERS,
        "before": args.before,
        "repeats": args.repeats,
        "runs": runs,
        "median": medians,
        "ratio_to_baseline": ratios,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "cpu_count": os.cpu_count(),
        "versions": {
            "jdl": jdl.__version__,
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "python": platform.python_version(),
        },
    }
    print(json.dumps({"median": medians, "ratio_to_baseline": ratios}, indent=1))
    print(f"load average: {load_before} -> {load_after}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
