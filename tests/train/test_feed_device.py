"""The training data on the devices (issue #13): ``fit(..., data_on_device=...)`` puts an
in-memory source on the devices once and gathers each batch there, giving the same batches
in the same order as the host feed, and so the same training, bit for bit."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import TinyMLP, compiles

import jdl
from jdl.data import from_arrays
from jdl.train import feed as feed_lib
from jdl.train import parallelize, train_step

N, BATCH = 100, 16


def _data(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """``x[:, 0]`` holds each example's index, so a batch tells which examples it holds."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(n, dtype=np.float32)[:, None], rng.normal(size=(n, 3))], 1)
    return x.astype(np.float32), (np.arange(n) % 3).astype(np.int32)


def _step(strategy: str = "jit"):
    import functools

    return parallelize(functools.partial(train_step, loss_fn="cross_entropy"), strategy)


def _ids(feed, **kw):
    return [
        np.asarray(b["x"][:, 0]).astype(int).tolist()
        for b in feed_lib._epoch_batches(feed, BATCH, **kw)
    ]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("epoch, skip", [(0, 0), (2, 0), (1, 3), (1, 5), (1, 9)])
def test_device_feed_yields_the_host_feeds_batches(shuffle, epoch, skip):
    host = feed_lib._make_feed(from_arrays(*_data()))
    device = feed_lib._on_device(host, _step(), True)
    assert isinstance(device, feed_lib._DeviceFeed) and len(device) == N
    kw = {"seed": 5, "epoch": epoch, "shuffle": shuffle, "skip": skip}
    got = list(feed_lib._epoch_batches(device, BATCH, **kw))
    want = list(feed_lib._epoch_batches(host, BATCH, **kw))
    assert len(got) == len(want) == max(N // BATCH - skip, 0)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g["x"], jax.Array) and g.keys() == w.keys()
        for k in w:
            assert g[k].dtype == w[k].dtype
            np.testing.assert_array_equal(np.asarray(g[k]), w[k])
    if skip == 0 and shuffle:  # a different epoch is a different order
        assert _ids(device, seed=5, epoch=epoch) != _ids(device, seed=5, epoch=epoch + 1)


def _fit(data_on_device, strategy=None, **kw):
    x, y = _data()
    return jdl.fit(
        TinyMLP(), (x, y), batch_size=BATCH, epochs=3, optimizer=("adam", 1e-2),
        loss="cross_entropy", validation=(x[:40], y[:40]), verbose=0, log_every=2,
        seed=1, strategy=strategy, data_on_device=data_on_device, **kw,
    )  # fmt: skip


def _assert_same_run(a, b):
    assert a.metrics == b.metrics
    jax.tree_util.tree_map(
        lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)),
        a.variables, b.variables,
    )  # fmt: skip


def _count_device_batches(monkeypatch) -> list[int]:
    seen = []
    original = feed_lib._DeviceFeed.batches

    def counting(self, order, batch_size, skip):
        for batch in original(self, order, batch_size, skip):
            seen.append(1)
            yield batch

    monkeypatch.setattr(feed_lib._DeviceFeed, "batches", counting)
    return seen


def test_fit_on_device_equals_fit_from_host_bitwise(monkeypatch):
    host = _fit(False)
    seen = _count_device_batches(monkeypatch)
    device = _fit(True)
    assert len(seen) == 3 * (N // BATCH)  # every training batch was gathered on the device
    _assert_same_run(host, device)
    assert device.metrics["loss"][-1] < device.metrics["loss"][0]
    assert "val_loss" in device.metrics


def test_a_second_fit_on_device_compiles_what_one_from_the_host_does():
    _fit(True), _fit(False)  # both compiled once
    assert compiles(_fit, True) == compiles(_fit, False)


def test_fit_chooses_the_device_for_small_in_memory_data(monkeypatch):
    seen = _count_device_batches(monkeypatch)
    _fit(None, steps=N // BATCH)  # one epoch
    assert len(seen) == N // BATCH
    seen.clear()
    monkeypatch.setattr(feed_lib, "_DEVICE_BYTES_CAP", 100)  # as if the data were large
    _fit(None, steps=4)
    assert seen == []
    _fit(False, steps=4)
    assert seen == []


def test_auto_budget_is_a_quarter_of_reported_device_memory():
    class Device:
        def __init__(self, stats):
            self.stats = stats

        def memory_stats(self):
            return self.stats

    assert feed_lib._device_budget(Device(None)) == feed_lib._DEVICE_BYTES_CAP
    assert feed_lib._device_budget(Device({"bytes_limit": 4000})) == 1000
    assert feed_lib._device_budget(Device({"bytes_limit": 1 << 40})) == feed_lib._DEVICE_BYTES_CAP


def test_fit_refuses_a_bad_data_on_device():
    with pytest.raises(
        ValueError, match=r"data_on_device must be None \(automatic\), True or False; got 'yes'"
    ):
        _fit("yes")


def test_data_on_device_true_refuses_what_cannot_be_gathered_on_device(monkeypatch):
    x, y = _data()
    with pytest.raises(ValueError, match=r"data_on_device=True, but the strategy is 'pmap'"):
        _fit(True, strategy="pmap")
    monkeypatch.setattr(feed_lib, "_IN_MEMORY_BYTES", 0)  # a list of dicts is then streamed
    examples = [{"x": x[i], "y": y[i]} for i in range(N)]
    streamed = feed_lib._make_feed(examples)
    with pytest.raises(ValueError, match="the training source is streamed, not held in memory"):
        feed_lib._on_device(streamed, _step(), True)
    assert feed_lib._on_device(streamed, _step(), None) is streamed  # auto: the host feed
    kw = {"batch_size": BATCH, "steps": 2, "optimizer": ("sgd", 0.1), "verbose": 0}
    with pytest.raises(ValueError, match="streamed"):
        jdl.fit(TinyMLP(), examples, loss="cross_entropy", data_on_device=True, **kw)
    auto = jdl.fit(TinyMLP(), examples, loss="cross_entropy", **kw)
    assert auto.steps == [2]


def test_on_device_leaves_a_plain_step_and_false_alone():
    host = feed_lib._make_feed(from_arrays(*_data()))
    assert feed_lib._on_device(host, _step(), False) is host
    assert feed_lib._on_device(host, lambda s, b: (s, {}), None) is host
    with pytest.raises(ValueError, match="the strategy is None"):
        feed_lib._on_device(host, lambda s, b: (s, {}), True)


@pytest.mark.multidevice
def test_sharded_fit_on_device_equals_sharded_fit_from_host():
    assert jax.device_count() == 8
    host = feed_lib._make_feed(from_arrays(*_data()))
    device = feed_lib._on_device(host, _step("sharded"), True)
    batch = next(feed_lib._epoch_batches(device, BATCH, seed=0, epoch=0))
    assert len(batch["x"].sharding.device_set) == 8  # split over the "data" axis
    assert not batch["x"].sharding.is_fully_replicated
    _assert_same_run(_fit(False, strategy="sharded"), _fit(True, strategy="sharded"))
    # a batch the mesh cannot split stays on the host, where the step refuses it
    assert feed_lib._on_device(host, _step("sharded"), True, batch_size=12) is host


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU backend aliases host memory")
def test_on_cpu_loaded_arrays_go_on_the_device_without_a_copy():
    x, y = _data()
    loaded = feed_lib._make_feed([{"x": x[i], "y": y[i]} for i in range(N)])  # read_all
    device = feed_lib._on_device(loaded, _step(), True)
    for k in ("x", "y"):
        assert np.shares_memory(np.asarray(device.arrays[k]), loaded.arrays[k])
