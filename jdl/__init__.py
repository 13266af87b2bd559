"""jdl: a functional JAX library to build, train and understand neural networks.

The subpackages (``jdl.nn``, ``jdl.train``, ...) and ``jdl.fit`` / ``jdl.evaluate`` /
``jdl.predict`` / ``jdl.save_model`` / ``jdl.load_model`` are imported on first use (a
module ``__getattr__``, PEP 562), so ``import jdl`` alone does not import JAX: ``python -m
jdl --help`` answers at once. ``jdl.fit``, ``from jdl import nn`` and ``import jdl.train``
work as with eager imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jdl._core.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from jdl import analysis, data, losses, metrics, nn, pretrained, train
    from jdl.train import evaluate, fit, load_model, predict, save_model

__version__ = "0.1.0.dev0"

#: The subpackages and modules of the public surface, imported on first access.
_SUBMODULES = ("analysis", "data", "losses", "metrics", "nn", "pretrained", "train")
#: Names re-exported from :mod:`jdl.train`.
_FROM_TRAIN = ("evaluate", "fit", "load_model", "predict", "save_model")

__all__ = [
    "analysis",
    "data",
    "evaluate",
    "fit",
    "load_model",
    "losses",
    "metrics",
    "nn",
    "predict",
    "pretrained",
    "save_model",
    "train",
    "__version__",
]


#: Where each name imported on first use lives (a subpackage is its own module).
_WHERE = {
    **{name: f"jdl.{name}" for name in _SUBMODULES},
    **dict.fromkeys(_FROM_TRAIN, "jdl.train"),
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
