"""One shuffle order for both of fit's feeds (issue #12): a source held in memory and the same
examples streamed through ``jdl.data.batches`` visit the examples of epoch ``e`` in the order
``jdl.data.epoch_order(n, seed, e)``, so ``fit`` trains on the same batches either way."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.data import batches, epoch_order, from_arrays
from jdl.train import feed as feed_lib

N, BATCH = 100, 16


def _examples(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """``x`` holds each example's index, so a batch tells which examples it holds."""
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return x, np.arange(n, dtype=np.int32) % 3


def _feeds(monkeypatch, x, y):
    in_memory = feed_lib._make_feed(from_arrays(x, y))
    monkeypatch.setattr(feed_lib, "_IN_MEMORY_BYTES", 0)  # as if the source were large
    streamed = feed_lib._make_feed([{"x": x[i], "y": y[i]} for i in range(len(x))])
    monkeypatch.undo()
    assert isinstance(in_memory, feed_lib._ArrayFeed)
    assert not isinstance(streamed, feed_lib._ArrayFeed)
    return in_memory, streamed


def _ids(feed, *, seed, epoch, skip=0, shuffle=True):
    out = feed_lib._epoch_batches(feed, BATCH, seed=seed, epoch=epoch, shuffle=shuffle, skip=skip)
    return [batch["x"][:, 0].astype(int).tolist() for batch in out]


@pytest.mark.parametrize("seed", [0, 7])
def test_in_memory_and_streamed_epochs_visit_the_examples_in_one_order(monkeypatch, seed):
    x, y = _examples()
    in_memory, streamed = _feeds(monkeypatch, x, y)
    steps = N // BATCH
    for epoch in range(3):
        order = epoch_order(N, seed, epoch)[: steps * BATCH].reshape(steps, BATCH).tolist()
        assert _ids(in_memory, seed=seed, epoch=epoch) == order, f"in memory, epoch {epoch}"
        assert _ids(streamed, seed=seed, epoch=epoch) == order, f"streamed, epoch {epoch}"
        # Resuming mid-epoch skips the same batches of the same order.
        assert _ids(streamed, seed=seed, epoch=epoch, skip=2) == order[2:]
    unshuffled = np.arange(steps * BATCH).reshape(steps, BATCH).tolist()
    assert _ids(streamed, seed=seed, epoch=1, shuffle=False) == unshuffled


def test_fit_trains_alike_on_an_in_memory_and_a_streamed_source(monkeypatch, train_source):
    x, y = train_source.x, train_source.y
    kwargs = dict(optimizer=optax.sgd(0.1), loss="cross_entropy", batch_size=32, epochs=3)
    kwargs.update(seed=3, verbose=0)
    in_memory = jdl.fit(TinyMLP(), from_arrays(x, y), **kwargs)
    monkeypatch.setattr(feed_lib, "_IN_MEMORY_BYTES", 0)  # every source streams
    streamed = jdl.fit(TinyMLP(), [{"x": x[i], "y": y[i]} for i in range(len(x))], **kwargs)
    np.testing.assert_allclose(streamed.metrics["loss"], in_memory.metrics["loss"], rtol=1e-6)
    for a, b in zip(_leaves(streamed.variables), _leaves(in_memory.variables), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def test_batches_start_epoch_continues_the_epochs_of_one_run():
    x, y = _examples()
    source = from_arrays(x, y)
    steps = N // BATCH
    whole = [b["x"][:, 0].tolist() for b in batches(source, BATCH, seed=5, num_epochs=4)]
    later = batches(source, BATCH, seed=5, num_epochs=2, start_epoch=2)
    assert [b["x"][:, 0].tolist() for b in later] == whole[2 * steps :]
    with pytest.raises(ValueError, match=r"start_epoch must be >= 0, got -1"):
        batches(source, BATCH, start_epoch=-1)
