"""The training progress display of :func:`jdl.fit` and :func:`jdl.train.sweep`.

``verbose`` chooses it (checked by :func:`check_verbose`):

* ``0``: nothing.
* ``1`` (the default): on a terminal, a tqdm bar over the whole run whose postfix is the
  running mean, over the epoch so far, of the loss and each metric; at the end of each
  epoch one line is printed above the bar (:func:`epoch_line`, e.g.
  ``epoch 3/10  1.2 s  loss 0.1234  accuracy 0.912  val_loss 0.2  val_accuracy 0.9``),
  and the bar is cleared when training ends, leaving one line per epoch on screen. When
  the stream is not a terminal (``sys.stderr.isatty()`` is false: output piped to a
  file, a CI log), it behaves as ``2``, so a log gets no carriage-return updates. In a
  Jupyter notebook the bar is tqdm's widget.
* ``2``: only the line per epoch, no bar.

In a multi-process run (``jax.distributed``) only process 0 shows anything: on every other
process any ``verbose`` is ``0``, so a job's log gets one bar and one line per epoch, not
one per process (the metrics are global, the same on every process).

The display writes to ``sys.stderr`` (as tqdm does; in a notebook to ``sys.stdout``, as
Keras does), looked up when training starts. The running means come from the metrics
fetched every ``log_every`` steps (no extra host synchronisation); the epoch line shows
the values the :class:`jdl.train.History` records for the epoch (the epoch means, the
``val_*`` metrics, what callbacks add such as ``learning_rate``), each to 4 significant
digits. Callbacks that print with ``tqdm.write`` (``ReduceLROnPlateau``) appear above the
bar, before their epoch's line.

``sweep`` shows one of its K configurations, labelled ``best config i`` (``i`` indexes
``SweepResult.configs`` and ``.histories``): in the bar the one with the lowest running
mean loss, in each epoch's line the one with the lowest ``val_loss`` (``loss`` without
validation), NaN ignored.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import jax
import numpy as np
from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as _notebook_tqdm
from tqdm.std import tqdm as _std_tqdm

from jdl._core.checks import is_int

#: ``means -> (label, values)``: what the display shows of one set of metric means
#: (``sweep`` picks one configuration of its K, ``fit`` shows them as they are).
Summary = Callable[[Mapping[str, Any]], tuple[str, dict[str, float]]]

_IN_NOTEBOOK = _notebook_tqdm is not _std_tqdm


def check_verbose(caller: str, verbose: Any) -> int:
    """``verbose`` as 0, 1 or 2 (``False`` / ``True`` are 0 / 1).

    Raises:
        ValueError: for anything else, naming the value.
    """
    if isinstance(verbose, bool | np.bool_):
        return int(verbose)
    if is_int(verbose) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(
        f"{caller} verbose must be 0 (silent), 1 (a progress bar and a line per epoch) or 2 "
        f"(a line per epoch); got {verbose!r}."
    )


def format_value(value: float) -> str:
    """A metric's value to 4 significant digits (``0.1234``, ``12.35``, ``9.876e-06``)."""
    return f"{float(value):.4g}"


def format_seconds(seconds: float) -> str:
    """An epoch's time: ``"1.2 s"``, under a second ``"35 ms"``."""
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def display_order(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` in the order they are shown, Keras's: ``loss``, the other training
    metrics, ``val_loss``, the other ``val_*`` metrics, then ``learning_rate``; otherwise
    as given."""

    def group(name: str) -> int:
        if name == "learning_rate":
            return 4
        if name.startswith("val_"):
            return 2 if name == "val_loss" else 3
        return 0 if name == "loss" else 1

    return {name: values[name] for name in sorted(values, key=group)}


def epoch_line(description: str, seconds: float, label: str, values: Mapping[str, float]) -> str:
    """The line printed for an epoch: its description, time, label and values (in
    :func:`display_order`).

    Example:
        >>> epoch_line("epoch 3/10", 1.23, "", {"val_loss": 0.2, "loss": 0.123449})
        'epoch 3/10  1.2 s  loss 0.1234  val_loss 0.2'
    """
    parts = [description, format_seconds(seconds)]
    parts += [label] if label else []
    parts += [f"{name} {format_value(v)}" for name, v in display_order(values).items()]
    return "  ".join(parts)


def _as_is(means: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    return "", {k: float(np.asarray(v)) for k, v in means.items()}


class Progress:
    """The display of one run (see the module's description for what each mode shows).

    Args:
        verbose: 0, 1 or 2 (checked with :func:`check_verbose`); taken as 0 on processes
            other than process 0 of a multi-process run.
        total_steps: the steps the run trains for (the bar's length).
        initial_step: the step it starts at (non-zero when resuming).
        summary: what is shown of a set of metric means (default: every metric as it is,
            for scalar metrics).
    """

    def __init__(
        self,
        verbose: Any,
        total_steps: int,
        initial_step: int = 0,
        summary: Summary | None = None,
    ) -> None:
        verbose = check_verbose("Progress", verbose) if jax.process_index() == 0 else 0
        self.file: TextIO = sys.stdout if _IN_NOTEBOOK else sys.stderr
        self.summary = summary or _as_is
        self.lines = verbose >= 1 and self.file is not None  # None: pythonw, no console
        self.bar: Any = None
        if self.lines and verbose == 1 and (_IN_NOTEBOOK or _isatty(self.file)):
            self.bar = tqdm(
                total=total_steps,
                initial=initial_step,
                unit="step",
                dynamic_ncols=True,
                leave=False,
                file=self.file,
            )
        self.description = ""
        self._start = time.perf_counter()

    def start_epoch(self, description: str) -> None:
        """Start timing an epoch; ``description`` (``"epoch 3/10"``) heads its bar and line."""
        self.description = description
        self._start = time.perf_counter()
        if self.bar is not None:
            self.bar.set_description(description, refresh=False)
            self.bar.set_postfix_str("", refresh=False)

    def update(self, steps: int, running_means: Mapping[str, Any]) -> None:
        """``steps`` more steps done; ``running_means``: the epoch's means so far."""
        if self.bar is None:
            return
        label, values = self.summary(running_means)
        parts = [label] if label else []
        parts += [f"{name}={format_value(v)}" for name, v in display_order(values).items()]
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        self.bar.update(steps)

    def end_epoch(self, logs: Mapping[str, Any]) -> str | None:
        """Print the epoch's line for its recorded ``logs`` (means and validation metrics).

        Returns:
            The line (``None`` when silent).
        """
        if not self.lines:
            return None
        label, values = self.summary(logs)
        line = epoch_line(self.description, time.perf_counter() - self._start, label, values)
        if self.bar is not None:
            tqdm.write(line, file=self.file)  # above the bar, which is redrawn below
        else:
            if sys.stdout is not None and sys.stdout is not self.file:
                sys.stdout.flush()  # what callbacks printed (tqdm.write) comes first in a log
            self.file.write(line + "\n")
            self.file.flush()
        return line

    def close(self) -> None:
        """Clear and close the bar (the epoch lines stay)."""
        if self.bar is not None:
            self.bar.close()


def _isatty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
