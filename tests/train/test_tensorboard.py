"""The TensorBoard callback writes event files TensorBoard reads, in Keras's layout."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

import jdl
from jdl import nn
from jdl.train.callbacks import LearningRateLogger, TensorBoard


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a folder's event files: tag -> [(step, value), ...].

    Reads TensorBoard's record framing (length, its CRC, data, its CRC) itself, so the test
    checks the files as TensorBoard would find them, not through the writer's own API.
    """
    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            record = data[offset + 12 : offset + 12 + length]
            assert len(record) == length, "truncated record"
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    log_dir = tmp_path_factory.mktemp("tb") / "run"
    history = jdl.fit(
        nn.MLP(widths=(8,), num_outputs=2),
        (x[:48], y[:48]),
        validation=(x[48:], y[48:]),
        optimizer=jdl.train.optimizer("adam", 1e-2),
        loss="cross_entropy",
        batch_size=16,
        epochs=3,
        log_every=1,
        callbacks=[TensorBoard(log_dir), LearningRateLogger()],
        verbose=0,
    )
    return history, log_dir


def test_epoch_means_go_to_train_and_validation(run):
    history, log_dir = run
    train, validation = read_scalars(log_dir / "train"), read_scalars(log_dir / "validation")
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [1, 2, 3]
        np.testing.assert_allclose(
            [v for _, v in train[f"epoch_{name}"]], history.metrics[name], rtol=1e-6
        )
        np.testing.assert_allclose(
            [v for _, v in validation[f"epoch_{name}"]], history.metrics[f"val_{name}"], rtol=1e-6
        )
    np.testing.assert_allclose(
        [v for _, v in train["epoch_learning_rate"]], history.metrics["learning_rate"], rtol=1e-6
    )


def test_every_step_is_written_at_its_global_step(run):
    history, log_dir = run
    batch_loss = read_scalars(log_dir / "train")["batch_loss"]
    steps = [s for s, _ in batch_loss]
    assert steps == list(range(1, 3 * 3 + 1))  # 48 examples / 16 = 3 steps per epoch
    # The epoch means are the means of that epoch's step values.
    values = np.array([v for _, v in batch_loss]).reshape(3, 3)
    np.testing.assert_allclose(values.mean(axis=1), history.metrics["loss"], rtol=1e-5)


def test_steps_false_writes_epochs_only(tmp_path):
    x = np.zeros((8, 3), np.float32)
    y = np.zeros(8, np.int32)
    jdl.fit(nn.MLP(widths=(4,), num_outputs=2), (x, y), batch_size=4, epochs=1, verbose=0,
            optimizer=("sgd", 0.1), loss="cross_entropy",
            callbacks=[TensorBoard(tmp_path, steps=False)])  # fmt: skip
    scalars = read_scalars(tmp_path / "train")
    assert "epoch_loss" in scalars and not any(t.startswith("batch_") for t in scalars)
    assert not (tmp_path / "validation").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [({"log_dir": 3}, TypeError, "path"), ({"log_dir": "x", "flush_secs": 0}, ValueError, ">= 1")],
)
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        TensorBoard(**kwargs)
