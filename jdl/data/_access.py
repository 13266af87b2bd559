"""The random-access source protocol (private): what a source is, how to read from one.

A *source* is anything with ``len(source)`` and ``source[i]`` returning an example dict
(``{"x": ..., "y": ...}``); ``__getitems__(indices)`` (a list of examples at once) and
``get_batch(indices)`` (the examples stacked) are optional speed-ups that
:func:`read_examples` and :func:`read_batch` use when present. Every part of jdl
that takes a source checks and reads it through the functions here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import GeneratorType
from typing import Any

import numpy as np

from jdl._core.checks import check_int
from jdl.data.stacking import _stack_examples, empty_batch


def check_source(source: Any, name: str = "source") -> None:
    """Raise a ``TypeError`` unless ``source`` supports ``len()`` and ``[i]``.

    Args:
        source: the object to check.
        name: what the caller calls it (``"train"``, ``"validation"``, ...), for the message.

    Raises:
        TypeError: naming what was expected and the type found (a dict, which has ``len``
            and ``[key]`` but no examples at ``[0]``, ``[1]``, ..., is refused); for a
            generator or other one-pass iterator (``jdl.data.batches(...)`` included), also
            what to pass instead and how streaming works.
    """
    if isinstance(source, Mapping):
        keys = sorted(map(str, source))
        raise TypeError(
            f"{name} must be a random-access data source (len() and [i]) or an (x, y) tuple "
            f"of arrays; got a dict with keys {keys}. For a dict of arrays pass "
            f"({name}['x'], {name}['y']) or jdl.data.from_arrays({name}['x'], {name}['y'])."
        )
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        stream = _describe_stream(source)
        if stream is not None:
            what, instead = stream
            raise TypeError(
                f"{name} must be a random-access data source (len() and [i]) or an (x, y) "
                f"tuple of arrays; got {what}, which can only be read once, in its own "
                f"order. Pass {instead} -- a source such as jdl.data.load(name, split) or "
                "jdl.data.from_arrays(x, y), or (x, y) arrays -- and let jdl batch and "
                "shuffle it (batch_size=, seed=): jdl.fit, "
                "jdl.evaluate and jdl.train.sweep read examples by index, which is what "
                "makes each epoch's order reproducible and a resumed run exact. A source "
                "too large for memory is streamed for you (jdl.data.load(..., "
                "in_memory=False), or any object with len() and [i]); data that cannot be "
                "indexed at all needs a loop of your own over jdl.train's step functions "
                "(how-to: 'Use jdl's pieces in your own training loop')."
            )
        raise TypeError(
            f"{name} must be a random-access data source (len() and [i]), e.g. "
            f"jdl.data.load(...) or jdl.data.from_arrays(x, y), or an (x, y) tuple of arrays; "
            f"got {type(source).__name__}"
        )


def _describe_stream(source: Any) -> tuple[str, str] | None:
    """A one-pass iterator handed over as a source: what it is and what to pass instead,
    in words; ``None`` for anything else."""
    kind = type(source).__name__
    if isinstance(source, GeneratorType):
        return "a generator", "the data it reads instead"
    if isinstance(source, Iterator):
        if type(source).__module__.split(".")[0] == "grain":
            what = f"a batch iterator ({kind}, as jdl.data.batches returns)"
            return what, "the source you gave jdl.data.batches instead"
        return f"an iterator ({kind})", "the data it reads instead"
    if isinstance(source, Iterable):
        return f"an iterable without len() and [i] ({kind})", "the data it reads instead"
    return None


def check_supervised(source: Any, name: str = "source") -> None:
    """:func:`check_source`, and that the first example is a dict with ``"x"`` and ``"y"``.

    Raises:
        TypeError: if ``source`` is not random-access.
        ValueError: if it holds no examples, or its examples are not dicts with ``"x"``
            and ``"y"``.
    """
    check_source(source, name)
    if len(source) == 0:
        raise ValueError(f"{name} is empty (0 examples); it needs at least one example.")
    example = source[0]
    if not isinstance(example, Mapping) or "x" not in example or "y" not in example:
        found = sorted(example) if isinstance(example, Mapping) else type(example).__name__
        raise ValueError(f'{name} examples must be dicts with "x" and "y"; got {found}.')


def is_in_memory(source: Any) -> bool:
    """Whether reading ``source`` is plain memory access (lists, tuples, ``in_memory`` sources)."""
    return isinstance(source, list | tuple) or bool(getattr(source, "in_memory", False))


def read_examples(source: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    """The examples at ``indices``: one ``__getitems__`` call where the source has it."""
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems(list(indices)))
    out = []
    for i in indices:
        try:
            out.append(source[i])
        except IndexError as err:  # the source's own __getitem__ failed inside its length
            raise IndexError(
                f"Reading example {i} of a source of length {len(source)} failed: "
                f"{type(source).__name__}.__getitem__({i}) raised IndexError ({err}). Its "
                "__len__ says it holds more examples than it can return; are its fields "
                "(e.g. x and y) of different lengths?"
            ) from err
    return out


def read_batch(source: Sequence[Any], indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The examples at ``indices`` stacked: the source's ``get_batch`` where it has one
    (one array indexing for in-memory sources), else its examples read and stacked.

    ``indices`` may be empty: the result then has zero-length arrays shaped like example 0.
    """
    get_batch = getattr(source, "get_batch", None)
    if get_batch is not None:
        return get_batch(np.asarray(indices, dtype=np.int64))
    keys = [int(i) for i in indices]
    if not keys:
        return empty_batch(source[0])
    return _stack_examples(read_examples(source, keys))


_ALIGN = 64
"""The byte alignment of the arrays :func:`read_all` allocates: JAX's CPU backend uses
arrays so aligned in place (``jax.device_put(..., may_alias=True)``) instead of copying."""


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array whose data start on a multiple of :data:`_ALIGN` bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + _ALIGN, np.uint8)
    start = -buffer.ctypes.data % _ALIGN
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


_CHUNK_BYTES = 16 << 20
"""At most about how many bytes of examples :func:`read_all` reads per call into a source."""

_CHUNK_EXAMPLES = 8192
"""At most how many examples :func:`read_all` reads per call (a source that returns a list
of example dicts holds far more than their data while the chunk is stacked)."""


def read_all(source: Sequence[Any], first: int = 256) -> dict[str, np.ndarray]:
    """Every example of a non-empty ``source``, in order, stacked: ``{key: (n, ...)}``.

    Reads in chunks of at most ``_CHUNK_EXAMPLES`` examples and ``_CHUNK_BYTES`` through
    :func:`read_batch` (one ``get_batch`` or ``__getitems__`` call per chunk, never one call
    per example where the source reads batches) into arrays allocated once from the first
    chunk (``first`` examples), so the peak memory is the result plus one chunk, not a list
    of examples and a stacked copy of it. The arrays are aligned to :data:`_ALIGN` bytes.

    Raises:
        ValueError: if a later chunk's examples have other shapes or keys than the first
            chunk's (which key, and both shapes).
    """
    n = len(source)
    head = read_batch(source, np.arange(min(first, n)))
    out = {k: _aligned_empty((n, *v.shape[1:]), v.dtype) for k, v in head.items()}
    per_example = max(sum(v[:1].nbytes for v in head.values()), 1)
    chunk = max(1, min(_CHUNK_EXAMPLES, _CHUNK_BYTES // per_example))
    start = 0
    while start < n:
        part = head if start == 0 else read_batch(source, np.arange(start, min(start + chunk, n)))
        if part.keys() != out.keys():
            raise ValueError(
                f"examples {start}.. have keys {sorted(part)}, example 0 has {sorted(out)}"
            )
        stop = start + len(part[next(iter(part))])
        for k, v in part.items():
            if v.shape[1:] != out[k].shape[1:]:
                raise ValueError(
                    f"cannot stack {k!r}: examples {start}..{stop - 1} have shape "
                    f"{v.shape[1:]}, example 0 has {out[k].shape[1:]}"
                )
            if not np.can_cast(v.dtype, out[k].dtype, "safe"):
                wider = _aligned_empty(out[k].shape, np.result_type(out[k].dtype, v.dtype))
                wider[:start] = out[k][:start]
                out[k] = wider
            out[k][start:stop] = v
        start = stop
    return out


def check_index(index: Any, length: int, what: str) -> int:
    """A single index, checked against ``length`` and made non-negative.

    Args:
        index: an integer (negative ones count from the end).
        length: the source's length.
        what: how to name the source in an ``IndexError``.

    Raises:
        TypeError: if ``index`` is a bool or not an integer.
        IndexError: if it is out of range.
    """
    i = check_int("index", index)
    if not -length <= i < length:
        raise IndexError(f"index {i} out of range for {what} of {length}")
    return i + length if i < 0 else i


def check_indices(indices: Any, length: int, what: str) -> np.ndarray:
    """A 1-D array of indices, checked against ``length`` and made non-negative.

    Raises:
        TypeError: if ``indices`` is not a 1-D sequence of integers (an empty one is fine).
        IndexError: if an index is out of range.
    """
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(
            f"indices must be a 1-D sequence of integers, got shape {idx.shape} and "
            f"dtype {idx.dtype}"
        )
    if idx.size and not (-length <= idx.min() and idx.max() < length):
        bad = idx[(idx < -length) | (idx >= length)][0]
        raise IndexError(f"index {bad} out of range for {what} of {length}")
    return np.where(idx < 0, idx + length, idx)
