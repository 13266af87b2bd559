"""``from_arrays``: your own NumPy or JAX arrays as a random-access source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from jdl._core.checks import describe_dtype, is_numeric_dtype
from jdl.data._access import check_index, check_indices, check_source

__all__ = ["ArraySource", "as_source", "from_arrays"]


def _as_array(name: str, value: Any) -> np.ndarray:
    if not (hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__array__")):
        raise TypeError(
            f"{name} must be a NumPy or JAX array of shape (num_examples, ...), got "
            f"{type(value).__name__}; convert it first, e.g. np.asarray({name})"
        )
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(
            f"{name} must have a leading axis of examples, shape (num_examples, ...), got a "
            f"0-d array (shape (), value {array!r}); for a single example use {name}[None]"
        )
    if not is_numeric_dtype(array.dtype):
        raise TypeError(
            f"{name} must be an array of numbers (or bools), got dtype {array.dtype} "
            f"({describe_dtype(array.dtype)}); encode it as numbers first (e.g. class names "
            f"as indices: np.unique({name}, return_inverse=True)[1])"
        )
    return array


class ArraySource:
    """Arrays ``x`` (inputs) and ``y`` (targets) as a random-access source of examples.

    What :func:`from_arrays` returns. Example ``i`` is ``{"x": x[i], "y": y[i]}`` (fresh
    NumPy arrays); a batch of examples is one array indexing (:meth:`get_batch`), which
    :func:`jdl.data.batches`, :func:`jdl.data.as_arrays`, :func:`jdl.fit`,
    :func:`jdl.evaluate`, :func:`jdl.train.sweep` and the analyses use. The arrays are
    held, not copied: change them and the source changes.

    Attributes:
        x: the inputs, a NumPy array ``(num_examples, ...)``.
        y: the targets, a NumPy array ``(num_examples, ...)``.
    """

    #: Reads are memory access (no threads needed to read ahead).
    in_memory = True

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        """Wraps two NumPy arrays of equal length; use :func:`from_arrays`, which checks them."""
        self.x = x
        self.y = y

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """``{"x": x, "y": y}`` (the arrays themselves, not copies)."""
        return {"x": self.x, "y": self.y}

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int | slice) -> dict[str, np.ndarray]:
        """Returns example ``index`` as ``{"x": np.ndarray, "y": np.ndarray}``.

        A slice (``source[:8]``) returns those examples stacked, as :meth:`get_batch` does.

        Raises:
            TypeError: If ``index`` is not an integer or a slice.
            IndexError: If ``index`` is out of range.
        """
        if isinstance(index, slice):
            return self.get_batch(np.arange(len(self))[index])
        i = check_index(index, len(self), "the arrays")
        return {"x": np.array(self.x[i]), "y": np.array(self.y[i])}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """Returns several examples at once."""
        return [self[i] for i in indices]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Returns the examples at ``indices`` stacked: ``{"x": (k, ...), "y": (k, ...)}``.

        Args:
            indices: Integer indices (negative ones count from the end); may be empty.

        Raises:
            TypeError: If ``indices`` are not integers.
            IndexError: If an index is out of range.
        """
        idx = check_indices(indices, len(self), "the arrays")
        return {"x": self.x[idx], "y": self.y[idx]}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"ArraySource(len={len(self)}, x={self.x.dtype}{list(self.x.shape[1:])}, "
            f"y={self.y.dtype}{list(self.y.shape[1:])})"
        )


def from_arrays(x: Any, y: Any) -> ArraySource:
    """A random-access source over arrays: example ``i`` is ``{"x": x[i], "y": y[i]}``.

    The way in for data you already hold in memory (NumPy or JAX arrays). The source works
    everywhere a :func:`jdl.data.load` source does (:func:`jdl.data.batches`,
    :func:`jdl.fit`, :func:`jdl.evaluate`, :func:`jdl.train.sweep`, the analyses) and is
    read by array indexing, never example by example. ``jdl.fit(model, (x, y), ...)`` is
    a shortcut for ``jdl.fit(model, from_arrays(x, y), ...)``.

    Args:
        x: inputs, shape ``(num_examples, ...)``. JAX arrays are copied to host memory.
        y: targets, shape ``(num_examples, ...)`` (e.g. class indices ``(num_examples,)``).

    Returns:
        An :class:`ArraySource`.

    Raises:
        TypeError: If ``x`` or ``y`` is not an array (a list, a dict, a number, ...) or
            does not hold numbers or bools (dtype ``object``, strings, dates, ...).
        ValueError: If ``x`` or ``y`` is 0-d, or their lengths (axis 0) differ.

    Example:
        >>> import numpy as np
        >>> source = from_arrays(np.zeros((10, 4), np.float32), np.arange(10))
        >>> len(source), source[3]["x"].shape, int(source[3]["y"])
        (10, (4,), 3)
        >>> from_arrays(np.zeros((10, 4)), np.arange(9))
        Traceback (most recent call last):
        ...
        ValueError: x and y must hold the same number of examples (axis 0): x has 10 (shape (10, 4)), y has 9 (shape (9,))
    """  # noqa: E501
    xa, ya = _as_array("x", x), _as_array("y", y)
    if len(xa) != len(ya):
        raise ValueError(
            "x and y must hold the same number of examples (axis 0): x has "
            f"{len(xa)} (shape {xa.shape}), y has {len(ya)} (shape {ya.shape})"
        )
    return ArraySource(xa, ya)


def as_source(data: Any, name: str = "data") -> Any:
    """What :func:`jdl.fit`, :func:`jdl.evaluate` and :func:`jdl.train.sweep` accept, as a source.

    An ``(x, y)`` tuple of arrays (as Keras takes) becomes :func:`from_arrays` ``(x, y)``;
    a random-access source is returned as it is.

    Args:
        data: an ``(x, y)`` tuple of arrays, or a random-access source (``len`` and ``[i]``).
        name: what the caller calls ``data``, for error messages.

    Returns:
        A random-access source.

    Raises:
        TypeError: If ``data`` is neither (or the tuple's entries are not arrays).
        ValueError: If the tuple's arrays are 0-d or of different lengths.

    Example:
        >>> import numpy as np
        >>> as_source((np.zeros((5, 2)), np.zeros(5)), "train")
        ArraySource(len=5, x=float64[2], y=float64[])
    """
    if isinstance(data, tuple) and len(data) == 2 and not any(isinstance(d, Mapping) for d in data):
        try:
            return from_arrays(*data)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}=(x, y): {err}") from None
    check_source(data, name)
    return data
