"""Strategies shared by the property tests: few distinct sizes, so JAX compiles little."""

from __future__ import annotations

import functools
import inspect

import jax
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: Batch sizes and widths the tests draw from (few values: one compilation each).
BATCHES = (1, 3, 8)
WIDTHS = (1, 3)
CLASSES = (2, 5)


@functools.cache
def jitted(fn):
    """``jax.jit(fn)``, ``k`` and ``average`` static: one compilation per shape, where
    calling ``fn`` eagerly compiles each of its operations for each new shape (slower).
    Checks on shapes run while tracing, so they raise as they do eagerly."""
    names = [n for n in ("k", "average") if n in inspect.signature(fn).parameters]
    return jax.jit(fn, static_argnames=names)


def floats(shape, *, bound: float = 1e3, dtype=np.float32) -> st.SearchStrategy[np.ndarray]:
    """Finite arrays of ``shape`` with values in ``[-bound, bound]``.

    No subnormal numbers: XLA on CPU flushes them to zero, where NumPy keeps them.
    """
    width = np.dtype(dtype).itemsize * 8
    elements = st.floats(-bound, bound, allow_nan=False, allow_subnormal=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def masks(draw, batch: int) -> np.ndarray:
    """A boolean ``(batch,)`` mask."""
    return draw(hnp.arrays(np.bool_, (batch,)))


@st.composite
def regression(draw, *, bound: float = 1e3):
    """``(predictions, targets)`` of one shape ``(batch,)`` or ``(batch, width)``."""
    batch = draw(st.sampled_from(BATCHES))
    shape = draw(st.sampled_from([(batch,), (batch, draw(st.sampled_from(WIDTHS)))]))
    return draw(floats(shape, bound=bound)), draw(floats(shape, bound=bound))


@st.composite
def classification(draw, *, bound: float = 1e3, ties: bool = False):
    """``(logits (batch, classes), labels (batch,) int32)``.

    With ``ties``, logits are small integers, so that several classes often share the top
    score (where ``argmax`` must pick the first, as NumPy's does).
    """
    batch = draw(st.sampled_from(BATCHES))
    classes = draw(st.sampled_from(CLASSES))
    if ties:
        logits = draw(
            hnp.arrays(np.float32, (batch, classes), elements=st.integers(-2, 2).map(float))
        )
    else:
        logits = draw(floats((batch, classes), bound=bound))
    labels = draw(hnp.arrays(np.int32, (batch,), elements=st.integers(0, classes - 1)))
    return logits, labels


def permutations(n: int) -> st.SearchStrategy[np.ndarray]:
    """A permutation of ``range(n)``."""
    return st.permutations(range(n)).map(lambda p: np.asarray(p, dtype=np.int64))
