"""The :class:`TensorBoard` callback: training curves as TensorBoard event files.

Written with `tensorboardX <https://github.com/lanpa/tensorboardX>`_, a small maintained
writer of TensorBoard's event format that needs neither TensorFlow nor PyTorch (only numpy
and protobuf, which jdl has already). It is imported when the callback starts, not with jdl.
The layout is the one Keras's ``TensorBoard`` callback writes, so the curves overlay the
same way: ``<log_dir>/train`` and ``<log_dir>/validation`` hold the epoch means under the
same tags (``epoch_loss``, ``epoch_accuracy``, ...), and ``<log_dir>/train`` also holds
each step's values (``batch_loss``, ...) and the learning rate when it is logged. View them
with ``tensorboard --logdir <log_dir>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jdl.train.callback_base import Callback, Run

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Write the run's metrics as TensorBoard event files (Keras's layout).

    Every epoch, the training means go to ``<log_dir>/train`` and the validation metrics
    (``val_*``, without the prefix) to ``<log_dir>/validation``, tagged ``epoch_<name>`` at
    step = the epoch. With ``steps=True`` (default) each step's values, as :func:`jdl.fit`
    fetches them every ``log_every`` steps, are also written as ``batch_<name>`` at the
    global step (nothing extra is fetched from the device). Only process 0 writes in a
    multi-process run. A resumed run appends new event files to the same folders;
    TensorBoard shows the latest value of a repeated step.

    Args:
        log_dir: the folder to write into (created if missing).
        steps: also write per-step values.
        flush_secs: how often the writer flushes to disk (it always does at the end).

    Example:
        >>> from jdl.train.callbacks import TensorBoard
        >>> tb = TensorBoard("runs/mlp")  # doctest: +SKIP
        >>> jdl.fit(model, data, callbacks=[tb])  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | os.PathLike, *, steps: bool = True, flush_secs: int = 10):
        if not isinstance(log_dir, str | os.PathLike) or not str(log_dir):
            raise TypeError(f"TensorBoard log_dir must be a path, got {log_dir!r}")
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, int) or flush_secs < 1:
            raise ValueError(f"TensorBoard flush_secs must be an int >= 1, got {flush_secs!r}")
        self.log_dir = Path(log_dir)
        self.steps = bool(steps)
        self.flush_secs = flush_secs
        self._writers: dict[str, Any] = {}

    def _writer(self, split: str) -> Any:
        if split not in self._writers:
            from tensorboardX import SummaryWriter  # imported only when a run writes

            self._writers[split] = SummaryWriter(
                str(self.log_dir / split), flush_secs=self.flush_secs
            )
        return self._writers[split]

    def _writes(self) -> bool:
        return jax.process_index() == 0

    def on_train_begin(self, run: Run) -> None:
        if self._writes():
            self.log_dir.mkdir(parents=True, exist_ok=True)

    def on_metrics(self, run: Run, first_step: int, metrics: dict[str, np.ndarray]) -> None:
        if not (self.steps and self._writes()):
            return
        writer = self._writer("train")
        for name, values in metrics.items():
            for i, value in enumerate(np.asarray(values, np.float64).reshape(-1)):
                writer.add_scalar(f"batch_{name}", float(value), first_step + i)

    def on_epoch_recorded(self, run: Run) -> None:
        # After every callback's on_epoch_end: what they added (learning_rate, ...) is in.
        if not self._writes():
            return
        for name, values in run.history.metrics.items():
            if not values:
                continue
            split, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self._writer(split).add_scalar(f"epoch_{tag}", float(values[-1]), run.epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, run: Run) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
