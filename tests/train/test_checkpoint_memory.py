"""Saving checkpoints does not grow memory without bound (issue #19).

TensorStore 0.1.86 leaks every value of the JSON objects it converts to Python, and Orbax read
all of TensorStore's kvstore metrics twice per saved item, for a log line: about
25-40 KB per checkpoint, forever. jdl stops that read (jdl.train.checkpoint's
``_bound_tensorstore_leak``), and builds the JSON of the file spec Orbax resolves for every
array (``KvStore.Spec(...).to_json()``, ~5 KB per checkpoint) itself
(jdl.train._tensorstore_leak); benchmarks/checkpoint_memory.py measures the resident memory
over 1,500 saves, and the stress suite (tests/stress/test_memory.py, ``nox -s stress``) checks
it over 400.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import optax
import pytest
import tensorstore as ts
from orbax.checkpoint._src.serialization import tensorstore_utils

from jdl.nn import MLP
from jdl.train import _tensorstore_leak, checkpoint, create_state, save_state


def _state():
    return create_state(MLP(widths=(8,), num_outputs=3), optax.adam(1e-3), np.zeros((2, 5)), 0)


def _objects_per_save(directory, state, saves: int) -> float:
    gc.collect()
    before = len(gc.get_objects())
    for i in range(saves):
        save_state(directory, state.replace(step=1000 + i), metadata={"i": i}, max_to_keep=3)
    gc.collect()
    return (len(gc.get_objects()) - before) / saves


def test_saves_leave_no_python_objects_behind(tmp_path):
    state = _state()
    for i in range(10):  # warm-up: Orbax's and JAX's caches fill once
        save_state(tmp_path, state.replace(step=i), max_to_keep=3)
    if checkpoint._leaks_json_references():  # the leak is there: bounded by jdl
        from orbax.checkpoint._src.serialization import tensorstore_utils

        assert tensorstore_utils.get_tensorstore_raw_bytes is checkpoint._no_raw_bytes
    # Before the bound: ~24 leaked objects per save with this state; after: none (a few
    # caches may still fill once: below 8 per save over 20 saves).
    assert _objects_per_save(tmp_path, state, 20) < 8


def test_orbax_file_specs_leak_nothing():
    """Orbax resolves the file spec of every array it writes with TensorStore's
    ``KvStore.Spec(...).to_json()``, which leaked ~300 B a call (~5 KB per checkpoint)."""
    checkpoint._bound_tensorstore_leak()

    def specs(base: str, n: int) -> None:
        for i in range(n):
            tensorstore_utils.build_kvstore_tspec(f"{base}/{i}.orbax-checkpoint-tmp", "params.w")

    specs("/tmp/warm-up", 20)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        specs("/tmp/jdl/checkpoints", 200)
        gc.collect()
        per_call = (tracemalloc.get_traced_memory()[0] - before) / 200
    finally:
        tracemalloc.stop()
    # Measured: ~300 B per call with TensorStore's to_json, ~5 without.
    assert per_call < 50, f"{per_call:.0f} B left behind per spec built (expected < 50)"


def test_file_spec_json_is_tensorstores(tmp_path):
    spec_of = _tensorstore_leak._KvStore.Spec
    for path in (f"{tmp_path}/", "/tmp/a b/é/0.orbax-checkpoint-tmp/", "/x"):
        plain = {"driver": "file", "path": path}
        assert isinstance(spec_of(plain), _tensorstore_leak._FileSpec)
        assert spec_of(plain).to_json() == ts.KvStore.Spec(plain).to_json()
        assert spec_of(plain).url == ts.KvStore.Spec(plain).url
    with pytest.raises(ValueError, match="Invalid file path"):  # validated as before
        spec_of({"driver": "file", "path": "/tmp/a//b/"})
    other = {"driver": "file", "path": "/x/", "file_io_locking": {"mode": "non_atomic"}}
    assert isinstance(spec_of(other), ts.KvStore.Spec)
    store = _tensorstore_leak._KvStore.open(spec_of({"driver": "file", "path": f"{tmp_path}/"}))
    store.result().write("key", b"value").result()
    assert (tmp_path / "key").read_bytes() == b"value"
