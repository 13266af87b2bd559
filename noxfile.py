"""Task runner: `nox -s lint tests` is what CI runs (see README.md and .ci/run).

The ``lint``, ``tests``, ``stress``, ``doctest``, ``docs`` and ``gallery`` sessions install
the exact versions of ``constraints.txt`` (the set the suite was last green with), so a release of
any dependency cannot turn CI red overnight. ``nox -s tests_latest`` runs the same suite
on the newest releases, to see drift on purpose; ``nox -s lock`` rewrites the constraints
from the newest releases (run it, then the suite, and commit both with a note).
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

SOURCES = ["jdl", "tests", "examples", "docs", "benchmarks", "noxfile.py"]
MULTIDEVICE_FLAGS = "--xla_force_host_platform_device_count=8"
CONSTRAINTS = "constraints.txt"
#: What ``nox -s lock`` resolves: the package with every extra the pinned sessions use, and
#: the tools those sessions install themselves.
LOCKED = [".[test,docs]", "ruff", "nox"]


def _install(session: nox.Session, *packages: str) -> None:
    """``pip install`` with the versions of ``constraints.txt``."""
    session.install("-c", CONSTRAINTS, *packages)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    _install(session, "ruff")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


def _suite(session: nox.Session) -> None:
    """Both parts of the suite; the second runs even when the first fails (both reported)."""
    env = {"JAX_PLATFORMS": "cpu"}
    args = session.posargs or []
    multidevice = f"{os.environ.get('XLA_FLAGS', '')} {MULTIDEVICE_FLAGS}".strip()
    parts = [
        ("single-device", "not multidevice and not interop and not gallery and not stress", env),
        ("multi-device (8 simulated devices)", "multidevice", {**env, "XLA_FLAGS": multidevice}),
    ]
    failed = []
    for name, marker, part_env in parts:
        try:
            session.run("pytest", "-m", marker, *args, env=part_env)
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error(f"The {' and the '.join(failed)} part of the suite failed (see above).")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on one CPU device, then its multi-device part on 8 simulated devices.

    Both parts run even when the first fails, and the session fails if either did. The
    tutorials (``-m gallery``) are left to ``nox -s docs``, which executes every one of
    them and fails on any error (CI runs both); ``nox -s gallery`` runs them alone.
    """
    _install(session, "-e", ".[test]")
    _suite(session)


@nox.session
def tests_latest(session: nox.Session) -> None:
    """The suite (both parts) on the newest release of every dependency, unpinned.

    Not part of CI: it shows drift from ``constraints.txt`` on purpose, not by surprise.
    The resolved versions are printed first.
    """
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", "--exclude-editable")
    _suite(session)


@nox.session
def lock(session: nox.Session) -> None:
    """Rewrite ``constraints.txt`` from the newest releases (then run the suite, and commit).

    ``nox -s lock -- "why"`` records the note in the file's header.
    """
    session.install("--upgrade", *LOCKED)
    frozen = session.run(
        "python", "-m", "pip", "freeze", "--exclude-editable", silent=True
    ).splitlines()
    pins = sorted(
        (line for line in frozen if line and not line.startswith(("#", "-e", "jdl"))),
        key=str.lower,
    )
    note = " ".join(session.posargs) or "refreshed with nox -s lock"
    python = session.run(
        "python", "-c", "import platform as p; print(p.python_version(), p.machine())", silent=True
    ).strip()
    header = [
        f"# The exact versions jdl's suite was last green with (Linux, CPython {python}).",
        "# Used by nox's lint, tests, stress, doctest, docs and gallery sessions and .ci/run;",
        "# users install jdl unpinned (pyproject.toml's lower bounds). Update on purpose:",
        "# `nox -s lock -- 'why'`, then `nox -s lint tests doctest docs`, then commit.",
        f"# {datetime.date.today().isoformat()}: {note}",
    ]
    Path(CONSTRAINTS).write_text("\n".join(header + pins) + "\n")
    session.log(f"Wrote {len(pins)} pins to {CONSTRAINTS}.")


@nox.session
def interop(session: nox.Session) -> None:
    """Numerical equivalence with torchvision and Keras 3 (installs torch, torchvision, keras).

    Not part of the default sessions: it installs ~5 GB of PyTorch. Keras runs on the JAX
    backend. The measured differences are printed (``-s``).
    """
    session.install("-e", ".[test]")
    session.install("torch==2.14.1", "torchvision==0.29.1", "keras>=3.5")
    env = {"JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}
    args = session.posargs or ["-s"]
    session.run("pytest", "-m", "interop", "tests/interop", *args, env=env)


def _prepare_datasets(session: nox.Session, env: dict[str, str]) -> None:
    """Generate the bundled datasets once, before anything prints examples' output.

    TFDS writes "Downloading and preparing dataset ..." to stdout the first time a dataset
    is generated; done here, that text stays out of doctest output and tutorial pages.
    """
    session.run(
        "python",
        "-c",
        "import jdl.data as d; [d.load(name, 'train') for name in d.BUNDLED]",
        env=env,
        silent=True,
    )


def _ensure_chromium(session: nox.Session) -> None:
    """Install Debian's Chromium for the browser check, unless a Chromium is on PATH."""
    if any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        return
    if shutil.which("apt-get") is None:
        session.error(
            "The docs check opens the site in headless Chromium, but no Chromium is on PATH "
            "and apt-get is unavailable: install Chromium (Debian: `apt-get install -y "
            "chromium`) and run `nox -s docs` again."
        )
    if os.geteuid() != 0:
        session.error(
            "The docs check needs Chromium: run `sudo apt-get install -y chromium` (or run "
            "this session as root, as CI does, and it installs it)."
        )
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=apt_env)
    session.run("apt-get", "install", "-y", "-qq", "chromium", external=True, env=apt_env)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs from scratch and check them in headless Chromium.

    Warnings are errors (``-W``), every tutorial in examples/ is executed (an error in any
    fails the build), then docs/check_html.py checks every internal link and image, that
    every number in a tutorial's prose appears in its output (or in
    docs/prose_numbers.toml, with a reason), and opens pages in Chromium. The site is in
    docs/_build/html. Intersphinx inventories are
    fetched into a cache first; offline, links to those projects are left out (see
    docs/intersphinx_inventories.py). ``JDL_DOCS_FULL=1`` builds full-size tutorials.
    Extra arguments go to sphinx-build, e.g. ``nox -s docs -- -j 2``.
    """
    _install(session, "-e", ".[docs]")
    for path in ("html", "doctrees", "screenshots"):
        shutil.rmtree(f"docs/_build/{path}", ignore_errors=True)
    for path in ("docs/auto_examples", "docs/gen_modules"):
        shutil.rmtree(path, ignore_errors=True)
    env = {
        "JAX_PLATFORMS": "cpu",
        "MPLBACKEND": "Agg",
        "JDL_DOCS_INTERSPHINX": os.environ.get("JDL_DOCS_INTERSPHINX", "cache"),
    }
    session.run("python", "docs/intersphinx_inventories.py", "fetch")
    _prepare_datasets(session, env)
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        *session.posargs,
        "docs",
        "docs/_build/html",
        env=env,
    )
    _ensure_chromium(session)
    session.run(
        "python",
        "docs/check_html.py",
        "docs/_build/html",
        "--screenshots",
        "docs/_build/screenshots",
    )


@nox.session
def doctest(session: nox.Session) -> None:
    """Run the examples in jdl's docstrings (``pytest --doctest-modules jdl``)."""
    _install(session, "-e", ".[test]")
    env = {"JAX_PLATFORMS": "cpu"}
    _prepare_datasets(session, env)
    session.run(
        "pytest", "--doctest-modules", "jdl", "-p", "no:cacheprovider", *session.posargs, env=env
    )


@nox.session
def gallery(session: nox.Session) -> None:
    """Run every tutorial script of examples/ in its own process, without building docs."""
    _install(session, "-e", ".[test]")
    session.run("pytest", "-m", "gallery", *session.posargs, env={"JAX_PLATFORMS": "cpu"})


@nox.session
def stress(session: nox.Session) -> None:
    """The stress suite, tests/stress (``-m stress``, opt-in ``JDL_STRESS=1``; CI runs it).

    54 SIGKILLs of checkpointed runs (in steps and inside checkpoint writes, with corrupted
    latest checkpoints) each resumed bitwise-exactly; a full disk (a small tmpfs; skipped
    where it cannot be mounted) while checkpointing and preparing datasets; three processes
    preparing one dataset cache at once; preparations killed at several moments; resident
    memory over a 20,000-step run and 400 saves. About 5 minutes on 2 cores; the figures are
    printed at the end ("jdl stress figures"). benchmarks/checkpoint_memory.py has the
    side-by-side memory numbers.
    """
    _install(session, "-e", ".[test]")
    env = {"JAX_PLATFORMS": "cpu", "JDL_STRESS": "1"}
    session.run("pytest", "-m", "stress", "tests/stress", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Training speed on MNIST-1D: jdl.fit vs a hand-written jax.jit loop vs PyTorch eager.

    Not part of the default sessions (it takes minutes and installs PyTorch). Writes
    ``benchmarks/results/mnist1d_cpu.{json,md}``; extra arguments go to the script, e.g.
    ``nox -s bench -- --repeats 3 --out benchmarks/results/mine``.
    """
    session.install("-e", ".")
    session.install("torch==2.13.0")
    args = session.posargs or ["--out", "benchmarks/results/mnist1d_cpu"]
    session.run("python", "benchmarks/bench_mnist1d.py", *args, env={"JAX_PLATFORMS": "cpu"})


@nox.session
def bench_gpu(session: nox.Session) -> None:
    """ResNet-50 training throughput on one GPU, bf16: jdl vs torchvision AMP (+ compile).

    For a machine with a GPU (not run by CI): installs jdl with JAX's CUDA 12 wheels and
    torchvision, then runs ``benchmarks/gpu_resnet50.py`` (images/s, MFU, host-fed vs
    on-device), writing ``benchmarks/results/gpu_resnet50.json``; extra arguments go to
    the script, e.g. ``nox -s bench_gpu -- --batch 128``. ``--smoke`` checks it anywhere.
    """
    session.install("-e", ".", "jax[cuda12]")
    session.install("torch", "torchvision")
    args = session.posargs or ["--out", "benchmarks/results/gpu_resnet50.json"]
    session.run("python", "benchmarks/gpu_resnet50.py", *args)
