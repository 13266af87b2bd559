"""jdl: a functional JAX library to build, train and understand neural networks."""

from jdl import analysis, data, losses, metrics, nn, pretrained, train
from jdl.train import evaluate, fit

__version__ = "0.1.0.dev0"

__all__ = [
    "analysis",
    "data",
    "evaluate",
    "fit",
    "losses",
    "metrics",
    "nn",
    "pretrained",
    "train",
    "__version__",
]
