"""The record of a training run: per-epoch metrics, the final state and variables."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jdl._core.files import atomic_write_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["History", "metric_mode"]

_HIGHER_IS_BETTER = ("acc", "precision", "recall", "f1")


def metric_mode(metric: str, mode: str = "auto") -> str:
    """Whether a metric is better higher (``"max"``) or lower (``"min"``).

    The one rule behind ``mode="auto"`` in :meth:`History.best`,
    :class:`~jdl.train.callbacks.EarlyStopping` and :meth:`jdl.train.SweepResult.best`:
    metrics whose name contains ``"acc"`` (``accuracy``, ``val_binary_accuracy``, ...),
    ``"precision"``, ``"recall"`` or ``"f1"`` are maximised, all others (losses, errors)
    minimised.

    Args:
        metric: the metric's name, e.g. ``"val_accuracy"``.
        mode: ``"max"``, ``"min"`` (returned as they are) or ``"auto"`` (the rule above).

    Returns:
        ``"max"`` or ``"min"``.

    Raises:
        ValueError: for any other ``mode``.

    Example:
        >>> metric_mode("val_accuracy"), metric_mode("val_loss"), metric_mode("loss", "max")
        ('max', 'min', 'max')
        >>> metric_mode("val_f1"), metric_mode("val_recall")
        ('max', 'max')
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'mode must be "max", "min" or "auto"; got {mode!r}.')
    if mode == "auto":
        return "max" if any(s in metric for s in _HIGHER_IS_BETTER) else "min"
    return mode


@dataclass
class History:
    """What :func:`jdl.fit` returns.

    Attributes:
        metrics: per-epoch numbers, e.g. ``{"loss": [...], "accuracy": [...],
            "val_loss": [...], "val_accuracy": [...]}``; training metrics are averages
            over the epoch's steps, validation metrics are exact over the whole
            validation set.
        epochs: the epoch number (1-based) of each row.
        steps: the global step count at the end of each row.
        state: the final :class:`jdl.train.TrainState` (``None`` after :meth:`from_json`).
        config: the run's settings (JSON-serialisable).
        stop_reason: why training stopped early (``None`` if it ran to the end).
        records: what callbacks recorded beside the per-epoch metrics, JSON-ready, by name
            (e.g. ``"monitor"``: :class:`jdl.analysis.TrainingMonitor`'s per-layer records);
            saved and loaded with the rest.
    """

    metrics: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    state: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, Any]:
        """The final model variables, ``{"params": ...}`` plus ``"batch_stats"`` where used."""
        if self.state is None:
            raise ValueError("This History holds no state (it was loaded from JSON).")
        return self.state.variables

    def append(self, epoch: int, step: int, row: dict[str, float]) -> None:
        """Add one epoch's numbers; a metric missing from earlier rows is padded with NaN."""
        n = len(self.epochs)
        for name in row:
            if name not in self.metrics:
                self.metrics[name] = [math.nan] * n
        for name, values in self.metrics.items():
            values.append(float(row.get(name, math.nan)))
        self.epochs.append(int(epoch))
        self.steps.append(int(step))

    def best(self, metric: str, mode: str = "auto") -> tuple[int, float]:
        """``(epoch, value)`` of the best epoch for ``metric`` (the first, on a tie).

        Args:
            metric: a key of :attr:`metrics`.
            mode: ``"min"``, ``"max"``, or ``"auto"`` (see :func:`metric_mode`: max for
                accuracies, min otherwise).

        Raises:
            KeyError: for a metric that was not recorded (lists the recorded ones).
            ValueError: for an unknown ``mode``.
        """
        if metric not in self.metrics:
            raise KeyError(
                f"No metric {metric!r} in this history; recorded: {sorted(self.metrics)}."
            )
        values = self.metrics[metric]
        mode = metric_mode(metric, mode)
        finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
        if not finite:
            raise ValueError(f"Metric {metric!r} has no finite value.")
        # The first epoch to reach the best value (as EarlyStopping/BestCheckpoint count it).
        pick = max if mode == "max" else min
        value, index = pick(finite, key=lambda pair: pair[0])
        return self.epochs[index], value

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (everything but the state)."""
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "metrics": {
                k: [None if math.isnan(v) else v for v in vs] for k, vs in self.metrics.items()
            },
            "config": self.config,
            "stop_reason": self.stop_reason,
            "records": self.records,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The history as JSON; also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> History:
        """Rebuild a history (without its state) from :meth:`to_json` output or a file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a history (without its state) from :meth:`to_dict` output."""
        metrics = {
            k: [math.nan if v is None else float(v) for v in vs]
            for k, vs in data["metrics"].items()
        }
        return cls(
            metrics=metrics,
            epochs=list(data["epochs"]),
            steps=list(data["steps"]),
            config=dict(data.get("config", {})),
            stop_reason=data.get("stop_reason"),
            records=dict(data.get("records", {})),
        )

    def to_csv(self, path: str | Path) -> None:
        """Write one row per epoch: ``epoch, step, <metric>...``."""
        names = list(self.metrics)
        rows = [["epoch", "step", *names]]
        for i, (epoch, step) in enumerate(zip(self.epochs, self.steps, strict=True)):
            rows.append([epoch, step, *(self.metrics[n][i] for n in names)])
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        atomic_write_text(path, buf.getvalue())

    # -- plotting ----------------------------------------------------------------------
    def plot(
        self, metrics: list[str] | None = None, *, axes: Sequence[Axes] | None = None
    ) -> Figure:
        """Plot the metrics by epoch: one panel per metric, validation beside training.

        Args:
            metrics: the base names to plot (e.g. ``["loss", "accuracy"]``); default all.
            axes: optional sequence of matplotlib axes, one per metric.

        Returns:
            The matplotlib ``Figure``.
        """
        import matplotlib.pyplot as plt

        bases = metrics or sorted(
            {k.removeprefix("val_") for k in self.metrics if k != "learning_rate"},
            key=lambda k: (k != "loss", k),
        )
        if axes is None:
            # At most 3 panels a row and 10 inches wide: where the docs show a figure at
            # ~730 px, its text stays >= 9 px tall.
            ncols = min(len(bases), 3)
            nrows = -(-len(bases) // ncols)
            fig, grid = plt.subplots(
                nrows,
                ncols,
                figsize=(min(4.5 * ncols, 10.0), 3.5 * nrows),
                squeeze=False,
                layout="constrained",
            )
            axes = list(grid.ravel())
            for ax in axes[len(bases) :]:
                ax.set_visible(False)
        else:
            fig = axes[0].figure
        for ax, base in zip(axes, bases, strict=False):
            for key, label in ((base, "training"), (f"val_{base}", "validation")):
                if key in self.metrics:
                    ax.plot(self.epochs, self.metrics[key], marker="o", ms=3, label=label)
            ax.set(xlabel="epoch", ylabel=base, title=base.replace("_", " "))
            if base == "loss":
                ax.set_yscale("log")
            ax.legend()
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        return fig
