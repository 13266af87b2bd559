"""The bottom layer: small helpers every other part of jdl may use (private).

Nothing here imports anything else from jdl (a test enforces it), so any layer -- ``data``,
``nn``, ``losses``/``metrics``, ``train``, ``analysis``, ``pretrained``, the CLI -- can use
these without pulling in another layer. Each concept has its one home here:

- :mod:`jdl._core.tree`: ``"a/b/c"`` paths of variable trees, flattening, lookups and shape
  comparison.
- :mod:`jdl._core.files`: atomic file and folder writes (a temporary one renamed into
  place), and telling a full disk apart from other write errors.
- :mod:`jdl._core.cache`: the cache folders (``$XDG_CACHE_HOME/jdl/...``).
- :mod:`jdl._core.reduce`: the per-example and masked means that losses and metrics share.
- :mod:`jdl._core.checks`: argument checks (an integer that is not a bool, ...).
- :mod:`jdl._core.memo`: hashability and a bounded LRU store (the compile-reuse caches).
- :mod:`jdl._core.signals`: installing and restoring SIGINT/SIGTERM handlers.
- :mod:`jdl._core.lazy`: packages whose public names are imported on first use (PEP 562).

Import the names from their modules (``from jdl._core.tree import flatten``).
"""
