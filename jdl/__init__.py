"""jdl: a functional JAX library to build, train and understand neural networks."""

from jdl import data, losses, metrics, nn, train
from jdl.train import evaluate, fit

__version__ = "0.1.0.dev0"

__all__ = ["data", "evaluate", "fit", "losses", "metrics", "nn", "train", "__version__"]
