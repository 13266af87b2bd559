"""jdl: a functional JAX library to build, train and understand neural networks."""

from jdl import data, losses, metrics, nn

__version__ = "0.1.0.dev0"

__all__ = ["data", "losses", "metrics", "nn", "__version__"]
