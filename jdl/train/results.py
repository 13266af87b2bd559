"""The result of many runs of one task: :class:`SweepResult`, one ``History`` per configuration.

:func:`jdl.train.sweep` (K configurations in one vmapped program) and
:func:`jdl.train.search` (one :func:`jdl.fit` per configuration, for settings that change
shapes) both return it, so ``table()``, ``plot()``, ``best()`` and ``final()`` read the
same whichever way the runs were trained.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from jdl.train.history import History, metric_mode

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SweepResult"]


def _fmt(value: Any) -> str:
    """A configuration value as a table cell: numbers with ``:g``, sequences joined."""
    if isinstance(value, bool) or not isinstance(value, numbers.Number | tuple | list):
        return str(value)
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return f"{value:g}"


@dataclass
class SweepResult:
    """What :func:`jdl.train.sweep` and :func:`jdl.train.search` return: one
    :class:`History` per configuration.

    Attributes:
        configs: the configurations, in order, each naming every swept setting, e.g.
            ``[{"learning_rate": 0.1, "seed": 0, "init_scale": 1.0, "weight_decay":
            1e-4}, ...]`` from a sweep or ``[{"widths": (64,), "batch_size": 32}, ...]``
            from a search.
        histories: one :class:`jdl.train.History` per configuration (same order), each
            with its per-epoch metrics and its final ``state`` / ``variables``.

    Example:
        >>> from jdl.train import History, SweepResult
        >>> runs = [History(metrics={"val_accuracy": [0.5, a]}) for a in (0.8, 0.9)]
        >>> result = SweepResult([{"momentum": 0.0}, {"momentum": 0.9}], runs)
        >>> result.best("val_accuracy")[0]
        {'momentum': 0.9}
        >>> print(result.table())
        momentum  val_accuracy
        ----------------------
               0           0.8
             0.9           0.9
    """

    configs: list[dict[str, Any]]
    histories: list[History] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.configs)

    def __getitem__(self, index: int) -> History:
        return self.histories[index]

    def final(self, metric: str) -> np.ndarray:
        """The last epoch's value of ``metric`` for every configuration, shape ``(K,)``."""
        self._check_metric(metric)
        return np.array([h.metrics[metric][-1] for h in self.histories])

    def best(self, metric: str, mode: str = "auto") -> tuple[dict[str, Any], History]:
        """The configuration whose final ``metric`` is best, and its history.

        Args:
            metric: a recorded metric, e.g. ``"val_accuracy"`` or ``"loss"``.
            mode: ``"max"``, ``"min"``, or ``"auto"`` (:func:`jdl.train.metric_mode`: max
                for accuracies, min otherwise).
                NaN (a diverged run) never wins.
        """
        values = self.final(metric)
        mode = metric_mode(metric, mode)
        if np.all(np.isnan(values)):
            raise ValueError(f"Every configuration has NaN {metric!r}: all runs diverged.")
        index = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
        return self.configs[index], self.histories[index]

    def table(self, metrics: Sequence[str] | None = None) -> str:
        """A plain-text table: one row per configuration, its settings and final metrics."""
        names = list(metrics) if metrics is not None else list(self.histories[0].metrics)
        for name in names:
            self._check_metric(name)
        keys = list(self.configs[0])
        header = [*keys, *names]
        rows = [
            [_fmt(c[k]) for k in keys] + [f"{h.metrics[n][-1]:.4g}" for n in names]
            for c, h in zip(self.configs, self.histories, strict=True)
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(s.rjust(w) for s, w in zip(r, widths, strict=True)) for r in rows]
        head = "  ".join(s.rjust(w) for s, w in zip(header, widths, strict=True))
        return "\n".join([head, "-" * len(head), *lines])

    def __str__(self) -> str:
        return self.table()

    def varying(self) -> list[str]:
        """The settings that differ between configurations (what tells the runs apart)."""
        return [k for k in self.configs[0] if len({_fmt(c[k]) for c in self.configs}) > 1]

    def plot(self, metric: str = "loss", *, ax: Axes | None = None) -> Figure:
        """One curve per configuration of ``metric`` by epoch; returns the ``Figure``."""
        import matplotlib.pyplot as plt

        self._check_metric(metric)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        varying = self.varying()
        for config, history in zip(self.configs, self.histories, strict=True):
            if len(varying) == 1:  # the setting's name goes into the legend's title
                label = (
                    f"{config[varying[0]]:.3g}"
                    if isinstance(config[varying[0]], float)
                    else _fmt(config[varying[0]])
                )
            else:
                label = ", ".join(f"{k}={_fmt(config[k])}" for k in varying) or "run"
            ax.plot(history.epochs, history.metrics[metric], marker="o", ms=3, label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=f"sweep: {metric.replace('_', ' ')}")
        if "loss" in metric:
            ax.set_yscale("log")
        # 9 pt: >= 9 px where the docs show a figure at ~730 px. Many curves: the legend
        # goes beside the axes rather than over the curves.
        where = (
            {} if len(self.configs) <= 4 else {"loc": "center left", "bbox_to_anchor": (1.02, 0.5)}
        )
        ax.legend(fontsize=9, title=varying[0] if len(varying) == 1 else None,
                  title_fontsize=9, **where)  # fmt: skip
        if ax.figure.get_layout_engine() is None:
            ax.figure.tight_layout()
        return ax.figure

    def _check_metric(self, metric: str) -> None:
        known = self.histories[0].metrics if self.histories else {}
        if metric not in known:
            raise KeyError(f"No metric {metric!r} was recorded; recorded: {sorted(known)}.")
