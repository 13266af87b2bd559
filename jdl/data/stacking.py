"""Stack a list of example dicts into one dict of arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _stack_examples(examples: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stacks examples (dicts with the same keys) along a new leading axis.

    Args:
        examples: A non-empty sequence of dicts of array-likes with equal keys and, per
            key, equal shapes.

    Returns:
        ``{key: np.stack([example[key] for example in examples])}``.

    Raises:
        ValueError: If ``examples`` is empty, or shapes differ between examples.
        TypeError: If an example is not a mapping.
        KeyError: If examples have different keys.
    """
    if len(examples) == 0:
        raise ValueError("cannot stack an empty list of examples")
    first = examples[0]
    for i, example in enumerate(examples):
        if not isinstance(example, Mapping):
            raise TypeError(
                f"examples must be dicts (e.g. {{'x': ..., 'y': ...}}), example {i} is a "
                f"{type(example).__name__}"
            )
        if example.keys() != first.keys():
            raise KeyError(f"example {i} has keys {sorted(example)}, example 0 has {sorted(first)}")
    stacked = {}
    for key in first:
        values = [np.asarray(example[key]) for example in examples]
        shapes = {v.shape for v in values}
        if len(shapes) > 1:
            raise ValueError(
                f"cannot stack {key!r}: examples have different shapes {sorted(shapes)}"
            )
        stacked[key] = np.stack(values)
    return stacked


def empty_batch(example: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A zero-length batch with the keys, shapes and dtypes of ``example``.

    What a process yields as its share of a final partial batch smaller than the number
    of processes.

    Example:
        >>> empty_batch({"x": np.ones(3, np.float32), "y": 1})["x"].shape
        (0, 3)
    """
    return {key: value[:0] for key, value in _stack_examples([example]).items()}
