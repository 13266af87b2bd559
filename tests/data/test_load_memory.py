"""Loading a source into memory (issue #13): in chunks of examples read together into
arrays allocated once (peak memory about the data, not a list of examples plus a stacked
copy), and arrays handed to ``fit`` are used as they are, never copied."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import jdl
from jdl.data import _access, as_arrays, as_source, from_arrays


class _Examples:
    """A source that reads examples only (no ``get_batch``), counting its calls."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.getitem_calls = 0
        self.getitems_calls: list[int] = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.getitem_calls += 1
        return {"x": self.x[i], "y": self.y[i]}

    def __getitems__(self, indices):
        self.getitems_calls.append(len(indices))
        return [{"x": self.x[i], "y": self.y[i]} for i in indices]


def _data(n, d=5):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)).astype(np.float32), (np.arange(n) % 7).astype(np.int64)


def test_reads_in_chunks_into_the_same_arrays_as_stacking(monkeypatch):
    x, y = _data(1003)
    monkeypatch.setattr(_access, "_CHUNK_BYTES", 28 * 100)  # 100 examples of 28 bytes
    source = _Examples(x, y)
    got = as_arrays(source)
    assert source.getitem_calls == 0  # no Python call per example
    assert source.getitems_calls == [256, 100, 100, 100, 100, 100, 100, 100, 47]
    assert got["x"].dtype == np.float32 and got["y"].dtype == np.int64
    assert got["x"].ctypes.data % 64 == 0 and got["y"].ctypes.data % 64 == 0
    assert got["x"].flags.c_contiguous and got["x"].flags.writeable
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], y)


def test_a_small_source_is_one_read():
    x, y = _data(40)
    source = _Examples(x, y)
    got = as_arrays(source)
    assert source.getitems_calls == [40]
    np.testing.assert_array_equal(got["x"], x)


def test_later_chunks_of_another_shape_are_refused_and_wider_dtypes_kept(monkeypatch):
    monkeypatch.setattr(_access, "_CHUNK_BYTES", 1)
    examples = [{"x": np.zeros(3, np.float32), "y": 1} for _ in range(4)]
    examples.append({"x": np.zeros(4, np.float32), "y": 1})
    with pytest.raises(ValueError, match=r"cannot stack 'x': examples 4\.\.4 have shape \(4,\)"):
        _access.read_all(examples, first=2)
    mixed = [{"x": np.int8(i), "y": 0} for i in range(3)] + [{"x": np.float64(0.5), "y": 0}]
    got = _access.read_all(mixed, first=2)["x"]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [0, 1, 2, 0.5])
    with pytest.raises(ValueError, match=r"examples 2\.\. have keys \['x'\], example 0 has"):
        _access.read_all([{"x": 1, "y": 2}] * 2 + [{"x": 3}], first=2)


def test_peak_memory_of_loading_is_under_twice_the_data():
    x, y = _data(200_000, 40)
    data = x.nbytes + y.nbytes
    source = _Examples(x, y)
    tracemalloc.start()
    try:
        got = as_arrays(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got["x"], x)
    assert data <= peak <= 2 * data, (peak, data)


def test_arrays_given_to_fit_are_not_copied(monkeypatch):
    import jdl.train.runner as runner

    x, y = _data(64, 4)
    y = y % 3
    feeds = []
    original = runner._on_device

    def spy(feed, *args):
        feeds.append(feed)
        return original(feed, *args)

    monkeypatch.setattr(runner, "_on_device", spy)
    for data in ((x, y), from_arrays(x, y)):
        jdl.fit(
            jdl.nn.MLP(widths=(8,), num_outputs=3), data, batch_size=16, steps=2,
            optimizer=("sgd", 0.1), loss="cross_entropy", verbose=0, data_on_device=False,
        )  # fmt: skip
        held = feeds.pop().arrays
        assert np.shares_memory(held["x"], x) and np.shares_memory(held["y"], y)
    assert as_source((x, y)).x is x
