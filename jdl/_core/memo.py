"""Keeping what was made for the same arguments: hashability, and a bounded LRU store.

jdl reuses objects whose identity matters to ``jax.jit``'s caches (compiled steps, optimiser
transformations, the compiled ``model.init``) when they are asked for again with the same
arguments; this is what those places share.
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["BoundedCache", "is_hashable"]


def is_hashable(value: Any) -> bool:
    """Whether ``hash(value)`` works (a list or a traced array somewhere inside: no).

    Example:
        >>> is_hashable(("adam", 1e-3)), is_hashable(("adam", [1e-3]))
        (True, False)
    """
    try:
        hash(value)
    except TypeError:
        return False
    return True


class BoundedCache:
    """A mapping that keeps the ``max_size`` most recently used entries.

    Example:
        >>> cache = BoundedCache(2)
        >>> cache.put("a", 1), cache.put("b", 2), cache.get("a"), cache.put("c", 3)
        (1, 2, 1, 3)
        >>> cache.get("b") is None, len(cache)
        (True, 2)
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        """The value stored for ``key`` (now the most recently used), or ``None``."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Any, value: Any) -> Any:
        """Store ``value`` for ``key``, dropping the least recently used beyond the bound;
        returns ``value``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)
