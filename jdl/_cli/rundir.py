"""The run directory of ``python -m jdl train``.

::

    runs/mnist1d-cnn-20261122-101500/
        config.json      every setting, the model, versions, devices: written when the
                         directory is created (the parameter count is added at the end)
        history.json     per-epoch metrics (jdl.train.History.to_json): written empty when
                         the directory is created, then after every epoch
        history.csv      the same, one row per epoch (at the end)
        results.json     the final model's test metrics (the test set is evaluated once,
                         at the end), the best validation accuracy and its epoch (a number
                         that is NaN or infinite is written as null)
        history.png      loss and accuracy curves
        model/           the final model for inference (jdl.save_model; load it with
                         jdl.load_model), unless training diverged
        checkpoints/     the TrainState (Orbax), resumable with --resume

In a multi-process run (``--distributed``) every process uses the directory process 0
named, and only process 0 writes these files; the checkpoints are written by all of them
(Orbax: each its part), so the directory must be on storage every process sees.

Every file is written atomically (a temporary file renamed into place), so an interrupted
or crashed run leaves each of them whole or absent.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import jdl
from jdl._core.files import atomic_path, atomic_write_text
from jdl.train.callbacks import Callback

CONFIG, HISTORY, CHECKPOINTS = "config.json", "history.json", "checkpoints"
MODEL = "model"


def plural(n: int, word: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``, ``"0 epochs"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinite floats as ``None`` (``null``: strict JSON)."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` as strict JSON (NaN and inf as null), atomically."""
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


class HistoryWriter(Callback):
    """A callback that writes the run's history to ``path`` after every recorded epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_epoch_recorded(self, run: Any) -> None:
        """Write the history so far (atomically)."""
        run.history.to_json(self.path)


class RunDirectory:
    """One run's directory: what is written when, and what it holds.

    Args:
        path: the directory.
        resume: whether the run continues the one in ``path`` (its history.json is kept).
        writes: whether this process writes the files (in a multi-process run only process
            0 does: for the others :meth:`create`, :meth:`write_config`,
            :meth:`remove_if_untouched` and :meth:`write_plot` do nothing).
    """

    def __init__(self, path: Path, *, resume: bool, writes: bool = True) -> None:
        self.path = Path(path)
        self.resume = resume
        self.writes = writes
        self._created = False

    @property
    def checkpoints(self) -> Path:
        """The checkpoint folder."""
        return self.path / CHECKPOINTS

    def create(self, config: dict[str, Any]) -> None:
        """Create the directory with config.json and an empty history.json.

        A resumed run keeps the run's own files until it has trained (``fit`` may still
        refuse its settings); :meth:`write_config` then writes the new config.
        """
        if not self.writes:
            return
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.resume and (self.path / CONFIG).exists()):
            self.write_config(config)
        if not (self.resume and (self.path / HISTORY).exists()):
            jdl.train.History(config={}).to_json(self.path / HISTORY)

    def write_config(self, config: dict[str, Any]) -> None:
        """Write config.json (atomically)."""
        if not self.writes:
            return
        write_json(self.path / CONFIG, config)

    def remove_if_untouched(self) -> None:
        """Remove the directory if this run created it and trained nothing into it.

        For a run refused by :func:`jdl.fit` before its first step: no empty directory is
        left behind to block the next ``--out``.
        """
        if not (self.writes and self._created):
            return
        if jdl.train.latest_step(self.checkpoints) is not None:
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def epochs_recorded(self) -> int | None:
        """The number of epochs in history.json (``None``: no readable history)."""
        try:
            return len(json.loads((self.path / HISTORY).read_text())["epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def holds(self) -> str:
        """What the directory holds, e.g. ``"config.json, history.json (2 epochs),
        checkpoints/ (step 80)"``."""
        if not self.path.is_dir():
            return "nothing (it was not created)"
        parts = []
        for entry in sorted(self.path.iterdir(), key=lambda p: (p.is_dir(), p.name)):
            if entry.name.startswith("."):
                continue  # a temporary file of an atomic write
            if entry.name == HISTORY and (n := self.epochs_recorded()) is not None:
                parts.append(f"{HISTORY} ({plural(n, 'epoch')})")
            elif entry.name == CHECKPOINTS:
                step = jdl.train.latest_step(entry)
                parts.append(f"{CHECKPOINTS}/ " + ("(empty)" if step is None else f"(step {step})"))
            else:
                parts.append(entry.name + ("/" if entry.is_dir() else ""))
        return ", ".join(parts) or "nothing"

    def write_plot(self, history: Any, title: str, name: str = "history.png") -> None:
        """Write the loss and accuracy curves of ``history`` (atomically)."""
        if not self.writes:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = self.path / name
        fig = history.plot()
        fig.suptitle(title)
        if fig.get_layout_engine() is None:  # History.plot may have chosen one
            fig.tight_layout()
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
        finally:
            plt.close(fig)
