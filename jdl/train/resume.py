"""What ``fit(..., resume=True)`` checks and restores beyond the state itself.

A checkpoint written by :class:`jdl.train.callbacks.Checkpoint` carries, beside the
:class:`jdl.train.TrainState` and the history, the run's configuration
(:func:`run_config`), every callback's :meth:`~jdl.train.callbacks.Callback.state_dict`
as of the last complete epoch, and, when the last epoch was cut short (a ``steps`` limit),
the metric sums of its steps so far. A resumed run refuses a configuration that differs
in anything but its length (:func:`check_config`), continues a partial epoch where it
stopped and ends bitwise equal to the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jdl.train.callback_base import Callback
from jdl.train.callbacks import Checkpoint
from jdl.train.checkpoint import restore_latest_valid
from jdl.train.history import History
from jdl.train.state import TrainState

__all__ = ["ResumeMismatchError"]

LENGTH_KEYS = ("epochs", "steps")
"""Settings a resumed run may change (to train longer)."""


class ResumeMismatchError(ValueError):
    """``fit(..., resume=True)`` was asked to continue a checkpoint with other settings."""


def _describe_opt_state(node: Any) -> str:
    """The optimiser's structure as the names of its state types, e.g.
    ``(EmptyState, InjectStatefulHyperparamsState(ScaleByAdamState, EmptyState))``."""
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        children = [_describe_opt_state(c) for c in node if isinstance(c, tuple | list | dict)]
        children = [c for c in children if c]
        return type(node).__name__ + (f"({', '.join(children)})" if children else "")
    if isinstance(node, tuple | list):
        return "(" + ", ".join(d for d in map(_describe_opt_state, node) if d) + ")"
    if isinstance(node, dict):
        inner = [_describe_opt_state(v) for v in node.values()]
        if any(isinstance(v, tuple) and hasattr(v, "_fields") for v in node.values()):
            return "{" + ", ".join(f"{k}: {d}" for k, d in zip(node, inner, strict=True)) + "}"
    return ""


def _hyperparams(node: Any, found: dict[str, float]) -> dict[str, float]:
    """Every injected scalar hyper-parameter (``learning_rate``, ...) of an optax state."""
    hyper = getattr(node, "hyperparams", None)
    if isinstance(hyper, dict):
        for name, value in hyper.items():
            if np.ndim(value) == 0:
                key, n = name, 2
                while key in found:
                    key, n = f"{name}#{n}", n + 1
                # float32's shortest repr: 0.01, not 0.009999999776482582
                found[key] = float(str(np.asarray(value)[()]))
    children: Any = ()
    if isinstance(node, tuple | list):
        children = node
    elif isinstance(node, dict):
        children = node.values()
    for child in children:
        _hyperparams(child, found)
    return found


def _model_repr(model: Any) -> str:
    """The model's settings as one line, ``TinyMLP(num_outputs=3, dropout=0.0)`` (a
    ``flax.linen`` module's fields; memory addresses of functions dropped)."""
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        fields = [
            f"{f.name}={_model_repr(getattr(model, f.name))}"
            for f in dataclasses.fields(model)
            if f.name not in ("parent", "name") and hasattr(model, f.name)
        ]
        text = f"{type(model).__name__}({', '.join(fields)})"
    else:
        text = " ".join(repr(model).split())
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


#: Settings recorded only since a later version, as a checkpoint without them ran.
SAVED_DEFAULTS: dict[str, Any] = {"precision": "float32"}


def run_config(settings: dict[str, Any], model: Any, opt_state: Any, *, shuffle: bool) -> dict:
    """What a resumed run must share with the checkpoint it continues (JSON-serialisable).

    ``settings`` are the run's settings as ``History.config`` records them (batch size,
    length, loss, metrics, seed, penalties); the model is described in full (its fields,
    not only its class), and ``opt_state``, the fresh optimiser state, gives the
    optimiser's structure and injected hyper-parameters (the initial learning rate, ...).
    """
    return {
        **settings,
        "model": _model_repr(model),
        "optimizer": _describe_opt_state(opt_state),
        "optimizer_hyperparams": _hyperparams(opt_state, {}),
        "shuffle": shuffle,
    }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def check_config(
    saved: dict[str, Any] | None, current: dict[str, Any], directory: Any, step: int
) -> None:
    """Refuse to resume the checkpoint (at ``step`` in ``directory``) with other settings.

    Only the run's length (``epochs``, ``steps``) may change, and not to less than the
    checkpoint has trained.

    Raises:
        ResumeMismatchError: listing every setting that differs, the checkpoint's value
            and this run's, and how to start afresh instead.
    """
    if saved is None:  # a checkpoint written before configurations were recorded
        return
    saved = {**SAVED_DEFAULTS, **saved}
    keys = [k for k in current if k not in LENGTH_KEYS and saved.get(k) != current[k]]
    was = ", ".join(f"{k}={_short(saved.get(k))}" for k in keys)
    now = ", ".join(f"{k}={_short(current[k])}" for k in keys)
    fresh = (
        f"To train with the new settings, start afresh: use another Checkpoint directory "
        f"(or delete {directory})."
    )
    if keys:
        raise ResumeMismatchError(
            f"resume: the checkpoint in {directory} (step {step}) was written with {was}; "
            f"this run asks for {now}. A resumed run continues the checkpoint's run and may "
            f"only change its length (epochs, steps). {fresh}"
        )


def check_length(total_steps: int, step: int, directory: Any) -> None:
    """Refuse a resumed run shorter than what its checkpoint has already trained.

    Raises:
        ResumeMismatchError: naming the checkpoint's step and the run's length.
    """
    if total_steps < step:
        raise ResumeMismatchError(
            f"resume: the checkpoint in {directory} is at step {step}, past this run's "
            f"length of {total_steps} steps; ask for at least {step} steps (or the epochs "
            f"that make them), or start afresh in another Checkpoint directory."
        )


def encode(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``"inf"``, ``"-inf"``, ``"nan"``) and
    NumPy scalars as Python numbers, so it is strict JSON."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'inf', '-inf', 'nan'
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (lists stay lists)."""
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def _keys(callbacks: Sequence[Callback]) -> list[str]:
    """``"EarlyStopping"``, ``"EarlyStopping#2"``, ...: a callback's class and its rank."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def callback_states(callbacks: Sequence[Callback]) -> dict[str, Any]:
    """Every callback's (encoded) :meth:`Callback.state_dict`, by :func:`_keys`."""
    states = {}
    for key, cb in zip(_keys(callbacks), callbacks, strict=True):
        state = cb.state_dict()
        if state:
            states[key] = encode(state)
    return states


def kept_states(callbacks: Sequence[Callback]) -> dict[str, TrainState]:
    """Every callback's :meth:`Callback.kept_state` (those not ``None``), by :func:`_keys`."""
    kept = {key: cb.kept_state() for key, cb in zip(_keys(callbacks), callbacks, strict=True)}
    return {key: state for key, state in kept.items() if state is not None}


def load_callback_states(
    callbacks: Sequence[Callback],
    states: dict[str, Any],
    kept: dict[str, TrainState] | None = None,
) -> None:
    """Hand each callback its saved state and kept training state (callbacks without one
    keep theirs)."""
    kept = kept or {}
    for key, cb in zip(_keys(callbacks), callbacks, strict=True):
        if key in states:
            cb.load_state_dict(decode(states[key]))
        if key in kept:
            cb.load_kept_state(kept[key])


@dataclasses.dataclass
class ResumePoint:
    """Where a (possibly resumed) run starts, from :func:`restore_run`.

    Attributes:
        state: the state to train from.
        epoch: the 0-based index of the first epoch to train (a partial one continues).
        sums: the metric sums and step count of the partial epoch's steps already taken.
        callbacks: the saved callback states (:func:`callback_states`).
        kept: the saved training states of callbacks (:func:`kept_states`).
        stop_reason: why the saved run was stopped by a callback (then nothing is trained).
    """

    state: TrainState
    epoch: int = 0
    sums: tuple[dict[str, Any], int] = ({}, 0)
    callbacks: dict[str, Any] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    kept: dict[str, TrainState] = dataclasses.field(default_factory=dict)


def restore_run(
    state: TrainState,
    history: History,
    callbacks: Sequence[Callback],
    config: dict[str, Any],
    total_steps: int,
    steps_per_epoch: int,
) -> ResumePoint:
    """Restore the latest checkpoint of the run's :class:`Checkpoint` callback.

    Fills ``history`` with the saved epochs (less a partial last epoch, which the resumed
    run trains to its end) and checks the saved configuration against ``config``.
    Unreadable newer checkpoints are skipped with a warning (see
    :func:`jdl.train.restore_state`); the ``Checkpoint`` callback renames them aside
    before it saves.

    Raises:
        ValueError: without a ``Checkpoint`` callback.
        ResumeMismatchError: for other settings than the checkpoint's, or a shorter run.
        jdl.train.CheckpointMismatchError: for a checkpoint that does not fit the model.
        jdl.train.CheckpointCorruptError: if no checkpoint of the directory can be read.
    """
    checkpoints = [c for c in callbacks if isinstance(c, Checkpoint)]
    if not checkpoints:
        raise ValueError("resume=True needs a jdl.train.callbacks.Checkpoint callback.")
    directory = checkpoints[0].directory
    restored = restore_latest_valid(
        directory, state, extra=_keys(callbacks), require=("history", "epoch")
    )
    if restored is None:
        why = "does not exist" if not directory.exists() else "holds no checkpoint"
        warnings.warn(
            f"resume=True: the checkpoint directory {directory} {why}; training starts "
            "from scratch.",
            stacklevel=3,
        )
        return ResumePoint(state)
    state, meta, skipped = restored
    step = int(np.max(state.step))
    check_config(decode(meta.get("config")), config, directory, step)
    saved = History.from_dict(meta["history"])
    epoch = int(meta["epoch"])
    stop_reason = meta.get("stop_reason")
    if stop_reason is None:
        check_length(total_steps, step, directory)
    partial = meta.get("partial")
    if stop_reason is None and step < epoch * steps_per_epoch:
        # A partial last epoch: train it to its end, as uninterrupted. A run cut short by
        # `steps` recorded its row (dropped here); a checkpoint taken mid-epoch
        # (`every_steps`) has none yet.
        if saved.epochs and saved.epochs[-1] == epoch:
            saved.epochs.pop(), saved.steps.pop()
            for values in saved.metrics.values():
                values.pop()
        epoch -= 1
    else:
        partial = None
    history.metrics, history.epochs, history.steps = saved.metrics, saved.epochs, saved.steps
    if stop_reason is not None:
        warnings.warn(
            f"resume: the run in {directory} was stopped at epoch {epoch} ({stop_reason}); "
            "nothing more is trained. To train on, start afresh in another directory.",
            stacklevel=3,
        )
    sums = (decode(partial["sums"]), int(partial["count"])) if partial else ({}, 0)
    checkpoints[0].unreadable = sorted(skipped)  # renamed aside before its next save
    callbacks_meta = dict(meta.get("callbacks", {}))
    return ResumePoint(state, epoch, sums, callbacks_meta, stop_reason, meta.get("extra", {}))
