"""Test helpers: build variables without compiling JAX's random-number kernels.

On XLA:CPU every new parameter shape costs a fresh compile of the initialiser (~0.5 s each
on two cores), so most tests take shapes from ``jax.eval_shape`` and fill them with NumPy
random numbers (kernels ~ N(0, 1 / fan_in), biases small, BatchNorm at its identity).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def variable_shapes(model: Any, x: Any, **kwargs: Any) -> Any:
    """ShapeDtypeStructs of ``model.init(key, x, train=False, **kwargs)``; no compilation."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False, **kwargs))


def random_variables(model: Any, x: Any, seed: int = 0, **kwargs: Any) -> Any:
    """Variables with the model's structure, filled with NumPy random values."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        collection, name = path[0].key, path[-1].key
        shape, dtype = leaf.shape, leaf.dtype
        if collection == "batch_stats":
            value = np.zeros(shape) if name == "mean" else np.ones(shape)
        elif name == "scale":
            value = np.ones(shape)
        elif name == "bias":
            value = 0.1 * rng.standard_normal(shape)
        else:
            fan_in = math.prod(shape[:-1]) if len(shape) > 1 else 1
            value = rng.standard_normal(shape) / math.sqrt(fan_in)
        return np.asarray(value, dtype=dtype)

    return jax.tree_util.tree_map_with_path(fill, variable_shapes(model, x, **kwargs))


def shapes_of(tree: Any) -> Any:
    """The tree with every leaf replaced by its shape tuple."""
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def run(model: Any, variables: Any, x: Any, **kwargs: Any) -> Any:
    """``model.apply(variables, x, **kwargs)`` compiled as one program (faster than eager).

    Keyword arguments are static; pass ``rngs`` through :func:`train_fn` instead.
    """
    return jax.jit(lambda v, inputs: model.apply(v, inputs, **kwargs))(variables, x)


def train_fn(model: Any, **kwargs: Any) -> Any:
    """A jitted ``(variables, x, dropout_key) -> (outputs, updated batch_stats)`` in train mode."""

    def step(variables, x, key):
        out, updates = model.apply(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"], **kwargs
        )
        return out, updates.get("batch_stats", {})

    return jax.jit(step)


def capture(model: Any, variables: Any, x: Any, name: str) -> tuple[np.ndarray, Any]:
    """(output of the top-level submodule ``name``, model output), in evaluation mode, jitted."""

    def fn(v, inputs):
        out, state = model.apply(
            v, inputs, train=False, capture_intermediates=lambda m, _: m.name == name
        )
        return state["intermediates"][name]["__call__"][0], out

    inner, out = jax.jit(fn)(variables, x)
    return np.asarray(inner), out
