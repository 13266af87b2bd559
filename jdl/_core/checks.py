"""Argument checks every layer uses: "an integer, and not a bool"."""

from __future__ import annotations

import numbers
import operator
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers; False for bools (``True`` is an ``int``) and the rest.

    Example:
        >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_number(value: Any) -> bool:
    """True for a Python or NumPy real number: a value whose range can be checked now.

    A JAX array is not one: it may be a traced value (a hyper-parameter swept by
    :func:`jdl.train.sweep`), whose range cannot be read without a host sync, so callers
    accept it unchecked.

    Example:
        >>> is_number(0.1), is_number(np.float32(0.1)), is_number(True), is_number("0.1")
        (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as a Python ``int``, or a clear error naming ``name``.

    Accepts anything ``operator.index`` accepts (Python and NumPy integers, 0-d integer
    arrays) except bools.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        minimum: if given, the smallest value allowed.

    Returns:
        ``operator.index(value)``.

    Raises:
        TypeError: if ``value`` is a bool or not an integer.
        ValueError: if ``value < minimum``.

    Example:
        >>> check_int("batch_size", np.int32(8), minimum=1)
        8
        >>> check_int("batch_size", True)
        Traceback (most recent call last):
        ...
        TypeError: batch_size must be an integer, got a bool: True
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, got a bool: {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {type(value).__name__}: {value!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def is_numeric_dtype(dtype: Any) -> bool:
    """True for the dtypes a model can take: bools, integers, floats (bfloat16 included),
    complex; False for strings, bytes, Python objects, dates and records.

    Example:
        >>> is_numeric_dtype(np.float32), is_numeric_dtype(bool), is_numeric_dtype("<U3")
        (True, True, False)
    """
    import jax.numpy as jnp  # here: the rest of this module needs only NumPy

    dtype = np.dtype(dtype)
    return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))


def describe_dtype(dtype: Any) -> str:
    """What a non-numeric dtype holds, in words, for error messages (``"strings"``, ...)."""
    kinds = {
        "U": "strings",
        "S": "byte strings",
        "O": "Python objects: a ragged or mixed-type array?",
        "M": "dates",
        "m": "time spans",
        "V": "raw bytes or records",
    }
    return kinds.get(np.dtype(dtype).kind, "not numbers")
