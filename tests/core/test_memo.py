"""jdl._core.memo: what the compile-reuse caches of jdl.train share."""

import numpy as np

from jdl._core.memo import BoundedCache, is_hashable


def test_is_hashable():
    assert is_hashable(("sgd", 0.1, (("momentum", 0.9),)))
    assert not is_hashable(("sgd", [0.1]))
    assert not is_hashable(np.zeros(3))


def test_bounded_cache_drops_the_least_recently_used():
    cache = BoundedCache(2)
    assert cache.put("a", 1) == 1 and cache.put("b", 2) == 2
    assert cache.get("a") == 1  # "a" is now the most recent: "b" goes first
    cache.put("c", 3)
    assert len(cache) == 2 and cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert cache.get("missing") is None
