"""Intersphinx inventories for the jdl docs: where they live and how they are cached.

The docs link to Python, NumPy, JAX, Flax and Optax through :mod:`sphinx.ext.intersphinx`,
which needs each project's ``objects.inv``. Sphinx fetches them over the network at build
time; when that fails it emits a warning, and ``sphinx-build -W`` turns the warning into a
failed build — so an offline machine could never build the docs with ``-W``, and hiding the
warning would also hide real problems. jdl resolves this in two steps:

1. ``python docs/intersphinx_inventories.py fetch`` (run by ``nox -s docs``) downloads the
   inventories it can reach into a cache (``docs/_build/intersphinx/``, kept between builds,
   refreshed after :data:`MAX_AGE_DAYS`) and says which ones it could not reach.
2. ``docs/conf.py`` calls :func:`intersphinx_mapping` to build the mapping from the
   environment variable ``JDL_DOCS_INTERSPHINX``:

   ``remote`` (the default for a plain ``sphinx-build``)
       Sphinx fetches every inventory itself: links everywhere, and a build without
       network fails under ``-W`` (as it should where the network is expected).
   ``cache`` (what ``nox -s docs`` uses)
       Only the cached files are used; a project whose inventory could not be fetched is
       left out of the mapping (its references render as plain text, no warning) and the
       build log says so. Everything else stays under ``-W``.
   ``off``
       No intersphinx links at all.

References to jdl itself are always checked: ``conf.py`` turns on ``nitpicky`` for every
``jdl.*`` target, so a broken internal cross-reference fails the build online or offline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path

#: Project name -> base URL of its documentation (its ``objects.inv`` lies there).
PROJECTS: dict[str, str] = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
    "flax": "https://flax.readthedocs.io/en/latest/",
    "optax": "https://optax.readthedocs.io/en/latest/",
}

#: Where ``fetch`` stores the inventories (under ``docs/_build``, which git ignores).
CACHE_DIR = Path(__file__).resolve().parent / "_build" / "intersphinx"

#: Cached inventories older than this are fetched again (if the network allows).
MAX_AGE_DAYS = 7

MODES = ("remote", "cache", "off")


def cache_file(name: str, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached ``objects.inv`` of project ``name``."""
    return cache_dir / f"{name}-objects.inv"


def fetch(
    cache_dir: Path = CACHE_DIR, *, timeout: float = 10.0, max_age_days: float = MAX_AGE_DAYS
) -> dict[str, str]:
    """Download every project's inventory into ``cache_dir``; never raises for the network.

    A cached file younger than ``max_age_days`` is kept as is. A download is written to a
    temporary file and renamed, so a failed one never replaces a good cached copy.

    Returns:
        ``{project: status}`` with status ``"cached"``, ``"fetched"`` or
        ``"unavailable: <reason>"``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    status = {}
    for name, url in PROJECTS.items():
        target = cache_file(name, cache_dir)
        if target.exists() and time.time() - target.stat().st_mtime < max_age_days * 86400:
            status[name] = "cached"
            continue
        try:
            with urllib.request.urlopen(url + "objects.inv", timeout=timeout) as response:
                data = response.read()
            if not data.startswith(b"# Sphinx inventory version"):
                raise ValueError("not a Sphinx inventory")
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            status[name] = "fetched"
        except Exception as err:  # offline, DNS failure, HTTP error, bad file
            reason = f"{type(err).__name__}: {err}"
            status[name] = (
                "unavailable (stale cache kept): " if target.exists() else "unavailable: "
            ) + reason
    return status


def intersphinx_mapping(
    mode: str | None = None, cache_dir: Path = CACHE_DIR
) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    """The ``intersphinx_mapping`` for ``conf.py`` and the projects left out.

    Args:
        mode: ``"remote"``, ``"cache"`` or ``"off"``; default ``$JDL_DOCS_INTERSPHINX``,
            else ``"remote"``.
        cache_dir: where :func:`fetch` stored the inventories.

    Returns:
        ``(mapping, missing)``: the mapping, and the projects without an inventory.

    Raises:
        ValueError: for an unknown mode.
    """
    mode = (mode or os.environ.get("JDL_DOCS_INTERSPHINX") or "remote").strip().lower()
    if mode not in MODES:
        raise ValueError(f"JDL_DOCS_INTERSPHINX must be one of {MODES}; got {mode!r}.")
    if mode == "off":
        return {}, list(PROJECTS)
    if mode == "remote":
        return {name: (url, None) for name, url in PROJECTS.items()}, []
    mapping, missing = {}, []
    for name, url in PROJECTS.items():
        path = cache_file(name, cache_dir)
        if path.exists():
            mapping[name] = (url, str(path))
        else:
            missing.append(name)
    return mapping, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    status = fetch(args.cache_dir, timeout=args.timeout)
    for name, state in status.items():
        print(f"intersphinx inventory {name:7s} {state}")
    if any(s.startswith("unavailable:") for s in status.values()):
        print(
            "Projects without an inventory are built without links to their docs "
            "(JDL_DOCS_INTERSPHINX=cache); everything else is still checked with -W."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
