"""jdl: a functional JAX library to build, train and understand neural networks.

The subpackages (``jdl.nn``, ``jdl.train``, ...) and ``jdl.fit`` / ``jdl.evaluate`` /
``jdl.predict`` are imported on first use (a module ``__getattr__``, PEP 562), so ``import
jdl`` alone does not import JAX: ``python -m jdl --help`` answers at once. ``jdl.fit``,
``from jdl import nn`` and ``import jdl.train`` work as with eager imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from jdl import analysis, data, losses, metrics, nn, pretrained, train
    from jdl.train import evaluate, fit, predict

__version__ = "0.1.0.dev0"

#: The subpackages and modules of the public surface, imported on first access.
_SUBMODULES = ("analysis", "data", "losses", "metrics", "nn", "pretrained", "train")
#: Names re-exported from :mod:`jdl.train`.
_FROM_TRAIN = ("evaluate", "fit", "predict")

__all__ = [
    "analysis",
    "data",
    "evaluate",
    "fit",
    "losses",
    "metrics",
    "nn",
    "predict",
    "pretrained",
    "train",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public subpackage, or a name of :mod:`jdl.train`, when first asked for."""
    if name in _SUBMODULES:
        return importlib.import_module(f"jdl.{name}")  # also sets it as jdl.<name>
    if name in _FROM_TRAIN:
        value = getattr(importlib.import_module("jdl.train"), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'jdl' has no attribute {name!r}; expected one of {__all__}")


def __dir__() -> list[str]:
    """The module's names, including those imported on first use."""
    return sorted(set(globals()) | set(__all__))
