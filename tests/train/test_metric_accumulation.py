"""Training metrics written on the device by the compiled step, fetched once per
``log_every`` steps (jdl/train/_metric_rows.py, issue #13): the same numbers as fetching
every step's metrics, one transfer per metric."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import _metric_rows, create_state, optimizer, parallelize, runner, train_step
from jdl.train._metric_rows import MetricBuffer
from jdl.train.callbacks import Callback


class Record(Callback):
    """Keeps every fetch: ``(first_step, {name: rows})``."""

    def __init__(self):
        self.fetches = []

    def on_metrics(self, run, first_step, metrics):
        rows = {k: np.array(v) for k, v in metrics.items()}
        # the run's step count is that of the last row fetched
        assert run.step == first_step + len(rows["loss"]) - 1, (run.step, first_step)
        self.fetches.append((first_step, rows))


def _fit(data, per_step: bool, monkeypatch, **kw):
    if per_step:
        monkeypatch.setattr(runner, "row_writer", lambda train_fn: None)
    record = Record()
    x, y = data
    history = jdl.fit(
        TinyMLP(num_outputs=3), (x, y), batch_size=16, epochs=3, optimizer=("adam", 1e-2),
        loss="cross_entropy", verbose=0, strategy="jit", callbacks=[record], **kw,
    )  # fmt: skip
    monkeypatch.undo()
    return history, record.fetches


@pytest.fixture(scope="module")
def data():
    source = blobs(100, seed=4)  # 6 steps per epoch
    return source.x, source.y


@pytest.mark.parametrize("log_every", [4, 6, 50])
def test_device_rows_give_the_per_step_numbers(data, monkeypatch, log_every):
    rows_h, rows_f = _fit(data, False, monkeypatch, log_every=log_every)
    step_h, step_f = _fit(data, True, monkeypatch, log_every=log_every)
    assert rows_h.metrics == step_h.metrics  # the epoch means, exactly
    assert [s for s, _ in rows_f] == [s for s, _ in step_f]  # fetched at the same steps
    for (_, a), (_, b) in zip(rows_f, step_f, strict=True):
        assert a.keys() == b.keys() == {"loss", "accuracy"}
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
            np.testing.assert_array_equal(a[k], b[k])
    rows = sum(len(f["loss"]) for _, f in rows_f)
    assert rows == 18  # every step once, in order
    first = [s for s, _ in rows_f]
    assert first[0] == 1 and all(len(f["loss"]) <= log_every for _, f in rows_f)


def test_a_fetch_is_one_read_of_the_device_buffer(data, monkeypatch):
    reads, per_step = [], []
    real = _metric_rows.read_rows

    def read(rows, written, count):
        reads.append((written, count))
        return real(rows, written, count)

    monkeypatch.setattr(_metric_rows, "read_rows", read)
    monkeypatch.setattr(_metric_rows, "fetch", lambda pending: per_step.append(pending))
    x, y = data
    jdl.fit(TinyMLP(num_outputs=3), (x, y), batch_size=16, epochs=2, optimizer=("sgd", 0.1),
            loss="cross_entropy", verbose=0, strategy="jit", log_every=4)  # fmt: skip
    # 6 steps per epoch: 4 at log_every, 2 at the epoch's end; never step by step
    assert reads == [(4, 4), (6, 2), (10, 4), (12, 2)]
    assert per_step == []


def _writer_and_state():
    source = blobs(32, seed=1)
    batch = {"x": source.x[:8], "y": source.y[:8]}
    state = create_state(TinyMLP(num_outputs=3), optimizer("sgd", 0.1), batch["x"][:1])
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), "jit")
    return _metric_rows.row_writer(step), step, state, batch


def test_the_ring_buffer_keeps_the_steps_in_order_across_wrap_around():
    writer, step, state, batch = _writer_and_state()
    fetched = []
    buffer = MetricBuffer(3, lambda first, rows: fetched.append((first, rows)))
    losses = []
    for _ in range(7):
        rows = buffer.rows
        if rows is None:
            state, rows = writer.start(state, batch, 3)
        state, rows = writer(state, batch, rows)
        losses.append(float(step.unreplicate(rows)["values"]["loss"][(len(losses)) % 3]))
        buffer.add_row(rows)
        if len(losses) == 5:
            buffer.flush()  # an early fetch (a checkpoint inside an epoch): rows 4-5
    buffer.flush()
    assert [(first, len(r["loss"])) for first, r in fetched] == [(1, 3), (4, 2), (6, 2)]
    got = np.concatenate([r["loss"] for _, r in fetched])
    np.testing.assert_array_equal(got, np.asarray(losses, np.float32))
    assert losses[0] > losses[-1]  # distinct steps (training), not one row repeated
    assert int(rows["written"]) == 7


def test_reading_more_rows_than_the_buffer_holds_is_refused():
    writer, _, state, batch = _writer_and_state()
    _, rows = writer.start(state, batch, 2)
    with pytest.raises(ValueError, match="holds 2 steps; 3 were asked"):
        _metric_rows.read_rows(rows, 3, 3)


def test_only_the_jit_strategy_writes_rows():
    step = functools.partial(train_step, loss_fn="cross_entropy")
    assert _metric_rows.row_writer(parallelize(step, "jit")) is not None
    assert _metric_rows.row_writer(parallelize(step, "pmap")) is None
    evaluation = parallelize(functools.partial(jdl.train.eval_step, loss_fn="mse"), "jit")
    assert _metric_rows.row_writer(evaluation) is None
    assert _metric_rows.row_writer(lambda state, batch: (state, {})) is None


def test_a_state_the_step_returned_is_not_placed_again():
    _, _, state, batch = _writer_and_state()
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), "sharded")
    calls = []
    real = step._strategy.put_state
    step._strategy.put_state = lambda s: calls.append(s) or real(s)
    state, _ = step(state, batch)
    for _ in range(3):
        state, _ = step(state, batch)
    assert len(calls) == 1  # the fresh state only
    fresh = create_state(TinyMLP(num_outputs=3), optimizer("sgd", 0.1), batch["x"][:1])
    step(fresh, batch)  # another state: placed
    assert len(calls) == 2
