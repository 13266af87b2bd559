"""Small helpers for working with model variables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax

__all__ = ["count_params"]


def count_params(variables_or_params: Any) -> int:
    """Count the scalar parameters in a variables dict or a params tree.

    Given a Flax variables dict (a mapping with a ``"params"`` entry, as returned by
    ``model.init``), only ``variables["params"]`` is counted: BatchNorm running statistics
    (``"batch_stats"``) are buffers, not parameters, as in PyTorch's ``parameters()``. Any
    other pytree is counted whole. Leaves may be arrays or :class:`jax.ShapeDtypeStruct`, so
    the count works on ``jax.eval_shape(model.init, ...)`` without allocating anything.

    Args:
      variables_or_params: a variables dict, a params tree, or any pytree of arrays.

    Returns:
      The total number of scalar entries.

    Raises:
      TypeError: if a leaf has no shape (e.g. a string).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import flax.linen as nn
      >>> shapes = jax.eval_shape(nn.Dense(3).init, jax.random.key(0), jnp.ones((1, 4)))
      >>> count_params(shapes)
      15
    """
    tree = variables_or_params
    if isinstance(tree, Mapping) and "params" in tree:
        tree = tree["params"]
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        shape = getattr(leaf, "shape", None)
        if shape is None:
            if isinstance(leaf, int | float | complex) and not isinstance(leaf, bool):
                shape = ()
            else:
                raise TypeError(
                    f"count_params expects a pytree of arrays, found a leaf of type "
                    f"{type(leaf).__name__}: {leaf!r}"
                )
        total += math.prod(shape)
    return int(total)
