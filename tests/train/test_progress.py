"""The progress display of fit and sweep (jdl/train/progress.py): one line per epoch with
the values History records, no carriage returns off a terminal or with verbose=2, a bar
with the epoch's running means on a terminal, and verbose checked."""

import io
import re
import sys

import numpy as np
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import ReduceLROnPlateau
from jdl.train.progress import check_verbose, epoch_line, format_seconds, format_value
from jdl.train.runner import MetricBuffer

EPOCHS = 3


class TtyIO(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    return (x[:80], y[:80]), (x[80:], y[80:])


def _fit(arrays, verbose, **kw):
    train, validation = arrays
    return jdl.fit(
        TinyMLP(num_outputs=2), train, validation=validation, batch_size=16,
        optimizer=("adam", 1e-2), loss="cross_entropy", epochs=EPOCHS, log_every=2,
        verbose=verbose, **kw,
    )  # fmt: skip


def _parse(line):
    """``(description, label, {name: value string})`` of an epoch line."""
    description, seconds, *chunks = line.split("  ")
    assert re.fullmatch(r"\d+\.\d s|\d+ ms", seconds), line
    label = chunks.pop(0) if chunks and chunks[0].startswith("best config") else ""
    return description, label, dict(chunk.split(" ") for chunk in chunks)


def _assert_rows(lines, history, description="epoch {}/{}"):
    assert len(lines) == len(history.epochs) == EPOCHS
    for i, line in enumerate(lines):
        head, _, values = _parse(line)
        assert head == description.format(i + 1, EPOCHS)
        assert list(values) == ["loss", "accuracy", "val_loss", "val_accuracy"]
        assert values == {k: format_value(v[i]) for k, v in history.metrics.items()}


def _epoch_lines(text):
    """The lines of ``text`` that start with an epoch's description, across ``\\r`` updates
    (a bar's updates are not lines: they hold ``|``)."""
    pieces = re.split(r"[\r\n]", text)
    return [p for p in pieces if re.match(r"epoch \d+/\d+  ", p)]


def test_non_tty_verbose_1_writes_a_line_per_epoch_with_the_history_values(arrays, capsys):
    history = _fit(arrays, verbose=1)
    out = capsys.readouterr()
    assert "\r" not in out.err  # capsys's stream is no terminal: no bar updates
    assert out.out == ""
    _assert_rows(out.err.splitlines(), history)


def test_verbose_2_writes_only_lines_even_on_a_terminal(arrays, monkeypatch):
    stream = TtyIO()
    monkeypatch.setattr(sys, "stderr", stream)
    history = _fit(arrays, verbose=2)
    text = stream.getvalue()
    assert "\r" not in text and "%|" not in text
    _assert_rows(text.splitlines(), history)


def test_a_terminal_gets_bar_updates_with_running_means_and_the_epoch_lines(arrays, monkeypatch):
    stream = TtyIO()
    monkeypatch.setattr(sys, "stderr", stream)
    history = _fit(arrays, verbose=1)
    text = stream.getvalue()
    assert "\r" in text and "step/s" in text  # tqdm's bar, redrawn in place
    assert re.search(r"epoch 1/3: +\d+%\|", text)
    lines = _epoch_lines(text)
    _assert_rows(lines, history)
    # After each line the bar is redrawn with the epoch's mean (all its steps fetched),
    # not the last step's loss.
    for i, line in enumerate(lines):
        after = text.split(line, 1)[1].split("\n", 1)[1]
        redrawn = after.split("\r")[1]
        assert f"loss={format_value(history.metrics['loss'][i])}" in redrawn, redrawn
    assert text.endswith("\r")  # the bar is cleared at the end: the lines stay


def test_verbose_0_writes_nothing(arrays, capsys):
    _fit(arrays, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("bad", [3, -1, "1", 1.0, None])
def test_verbose_outside_0_1_2_is_refused_naming_the_value(arrays, bad):
    with pytest.raises(ValueError, match=rf"fit verbose must be 0.*got {re.escape(repr(bad))}"):
        _fit(arrays, verbose=bad)


def test_check_verbose_maps_bools_and_sweep_refuses_too(arrays):
    assert [check_verbose("fit", v) for v in (False, True, 0, 1, 2, np.int64(2))] == [
        0, 1, 0, 1, 2, 2,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="sweep verbose must be 0.*got 7"):
        jdl.train.sweep(
            TinyMLP(), arrays[0], batch_size=16, loss="cross_entropy", optimizer="sgd",
            learning_rates=[0.1], epochs=1, verbose=7,
        )  # fmt: skip


def test_sweep_lines_show_the_configuration_with_the_lowest_val_loss(arrays, capsys):
    train, validation = arrays
    result = jdl.train.sweep(
        TinyMLP(num_outputs=2), train, validation=validation, batch_size=16,
        loss="cross_entropy", optimizer="adam", learning_rates=[1e-4, 3e-2, 1e-2],
        epochs=EPOCHS, log_every=2, verbose=1,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == EPOCHS
    for i, line in enumerate(lines):
        head, label, values = _parse(line)
        assert head == f"sweep of 3: epoch {i + 1}/{EPOCHS}"
        best = int(np.argmin([h.metrics["val_loss"][i] for h in result.histories]))
        assert label == f"best config {best}"
        metrics = result.histories[best].metrics
        assert values == {k: format_value(v[i]) for k, v in metrics.items()}
    assert "best config 0" not in err  # lr 1e-4 barely moves: never the best


def test_plateau_messages_and_learning_rate_show_with_the_lines(arrays, capsys):
    plateau = ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=1)
    history = _fit(arrays, verbose=2, callbacks=[plateau])
    out = capsys.readouterr()
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.005." in out.out
    lines = out.err.splitlines()
    assert len(lines) == EPOCHS
    for i, line in enumerate(lines):
        values = _parse(line)[2]
        assert list(values)[-1] == "learning_rate"
        assert values == {k: format_value(v[i]) for k, v in history.metrics.items()}
    assert history.metrics["learning_rate"] == pytest.approx([0.01, 0.01, 0.005])


def test_running_means_cover_the_epoch_so_far_and_restart_each_epoch():
    seen = []
    buffer = MetricBuffer(2, lambda first, fetched: seen.append(buffer.running_means(fetched)))
    for loss in (1.0, 3.0, 5.0, 7.0):
        buffer.add({"loss": np.float32(loss)})
    assert buffer.take_means()["loss"] == pytest.approx(4.0)
    buffer.add({"loss": np.float32(10.0)})
    buffer.take_means()
    assert [float(m["loss"]) for m in seen] == pytest.approx([2.0, 4.0, 10.0])


def test_number_and_line_formatting():
    assert [format_value(v) for v in (0.123456, 12.3456, 9.876e-06, 0.9, float("nan"))] == [
        "0.1235", "12.35", "9.876e-06", "0.9", "nan",
    ]  # fmt: skip
    assert format_seconds(1.26) == "1.3 s" and format_seconds(0.0349) == "35 ms"
    line = epoch_line("epoch 2/5", 0.5, "", {"val_loss": 0.25, "learning_rate": 0.1, "loss": 1})
    assert line == "epoch 2/5  500 ms  loss 1  val_loss 0.25  learning_rate 0.1"
