"""Helpers for sphinx-gallery in jdl's docs (referenced by name from ``conf.py``).

sphinx-gallery runs every tutorial in the Sphinx process, one after the other. A tutorial
that changes global state — a JAX config flag such as ``jax_enable_x64``, an environment
variable such as ``XLA_FLAGS`` for a subprocess, the working directory — must not change
what the next tutorial sees. :func:`reset_state` puts that state back before each one.
"""

from __future__ import annotations

import os

import jax

#: JAX flags a tutorial may reasonably change; restored before every tutorial.
JAX_FLAGS = (
    "jax_enable_x64",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_disable_jit",
    "jax_default_matmul_precision",
    "jax_numpy_rank_promotion",
    "jax_log_compiles",
)

_BASELINE_ENV = dict(os.environ)
_BASELINE_JAX = {name: getattr(jax.config, name) for name in JAX_FLAGS}


def reset_state(gallery_conf, fname) -> None:
    """Restore JAX flags and environment variables to their values at start-up.

    sphinx-gallery calls this before each example (``reset_modules``); it sets the
    working directory itself.
    """
    for name, value in _BASELINE_JAX.items():
        if getattr(jax.config, name) != value:
            jax.config.update(name, value)
    for key in set(os.environ) - set(_BASELINE_ENV):
        del os.environ[key]
    for key, value in _BASELINE_ENV.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
