"""The :class:`TrainingMonitor` callback: per-layer gradient flow recorded *while* ``fit`` trains.

Every ``every`` steps the monitor runs one compiled, instrumented forward/backward pass of
the current state on a fixed batch of your choosing (the same batch every time, so what
changes is the network, not the data) and records, per layer:

``grad_norm``
    the norm of the layer's parameter gradient;
``update_ratio``
    ``|update| / |params|``: the norm of the update the optimiser would apply now (its real
    state: momentum, Adam moments, the current learning rate) over the parameter norm;
    around 1e-3 is the classic healthy range, above 1e-1 a step rewrites the layer;
``act_std``
    the standard deviation of the layer's activation;
``dead``
    the fraction of its units that output exactly 0 for the whole batch (ReLU);
``saturated``
    the fraction of its tanh/sigmoid activations at their limits.

These are the numbers of :func:`jdl.analysis.gradient_flow` (the same definitions), over
time. The pass is compiled once; its results stay on the device until the epoch ends and
then come back as one small transfer. :meth:`TrainingMonitor.plot` draws each number as a
heat map of layers × steps (the view of the Glorot & Bengio and He et al. figures), and
:meth:`TrainingMonitor.alerts` names the first step at which a layer went wrong.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jdl._core.checks import is_int
from jdl._core.files import atomic_write_text
from jdl._core.tree import own_leaves
from jdl.analysis._layers import (
    batch_extras,
    batch_xy,
    check_layer_names,
    discover_layers,
    get_loss,
    instrumented_pass,
    resolve_activation,
)
from jdl.analysis._probe import _activation_stats, _groups, _sum_squares
from jdl.analysis.flow import DEAD_FRACTION, SATURATED_FRACTION
from jdl.train.callback_base import Callback, Run

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MONITOR_STATS", "UPDATE_RATIO_LIMIT", "TrainingMonitor"]

#: The per-layer numbers a :class:`TrainingMonitor` records, in the order of its arrays.
MONITOR_STATS = ("grad_norm", "update_ratio", "act_std", "dead", "saturated")
#: An update/parameter ratio above this is reported by :meth:`TrainingMonitor.alerts`.
UPDATE_RATIO_LIMIT = 0.1


class TrainingMonitor(Callback):
    """Record per-layer gradient and activation statistics every ``every`` steps of ``fit``.

    Args:
        batch: the fixed batch to probe: a dict with ``"x"`` and ``"y"`` (and ``"lengths"``
            for a model that takes them) or an ``(x, y)`` tuple. A few hundred examples are
            plenty; it is what every record is computed on.
        loss: the training loss (a jdl loss name or function), as given to ``fit``.
        every: record every this many steps. Records are taken when ``fit`` fetches its
            metrics (every ``log_every`` steps), so ``every`` is rounded up to a multiple of
            ``fit``'s ``log_every``; the state before the first step is recorded too.
        activation: the hidden activation (``"auto"`` reads ``model.activation``), as in
            :func:`jdl.analysis.gradient_flow`.
        layers: restrict the records to these layer paths (default: every layer).
        train: probe in training mode (BatchNorm on batch statistics; dropout on).

    Attributes:
        steps: the global steps recorded (list of ints).
        layers: the layer paths, in forward order.
        values: ``{stat: array (len(steps), len(layers))}`` for each of
            :data:`MONITOR_STATS`.
        loss: the probe batch's loss at each recorded step.

    When the run ends, :meth:`to_dict` is also stored in the history, as
    ``history.records["monitor"]``, so ``history.to_json(path)`` saves it with the metrics.

    Example:
        >>> monitor = TrainingMonitor((x[:256], y[:256]), "cross_entropy")  # doctest: +SKIP
        >>> jdl.fit(model, (x, y), ..., callbacks=[monitor])  # doctest: +SKIP
        >>> monitor.plot()  # doctest: +SKIP
    """

    def __init__(
        self,
        batch: Any,
        loss: str | Callable,
        *,
        every: int = 50,
        activation: Any = "auto",
        layers: Any = None,
        train: bool = True,
    ):
        if not is_int(every) or every < 1:
            raise ValueError(f"TrainingMonitor every must be an int >= 1, got {every!r}")
        if isinstance(batch, tuple) and len(batch) == 2:
            batch = {"x": batch[0], "y": batch[1]}
        self._x, self._y = batch_xy(batch)
        self._batch = batch
        self.loss_fn = get_loss(loss)
        self.every = int(every)
        self.activation = activation
        self.requested_layers = layers
        self.train = bool(train)
        self.steps: list[int] = []
        self.layers: list[str] = []
        self.loss: list[float] = []
        self._rows: list[np.ndarray] = []
        self._pending: list[tuple[int, Any]] = []
        self._fn: Callable | None = None
        self._last = -1

    # -- recording -------------------------------------------------------------------------
    def on_train_begin(self, run: Run) -> None:
        """Compile the probe for the run's model and record the starting state."""
        state = run.get_state()
        self._fn, self.layers, self.kind = self._compile(state)
        if not self.steps or self.steps[-1] < run.step:
            self._record(run)

    def _compile(self, state: Any) -> tuple[Callable, list[str], str | None]:
        model = state.model
        variables = state.variables
        extras = batch_extras(model, self._batch)
        all_layers = discover_layers(model, variables, self._x, train=self.train, extras=extras)
        chosen = check_layer_names(self.requested_layers, all_layers)
        act_name, act_fn = resolve_activation(model, self.activation)
        pass_fn = functools.partial(
            _monitor_pass,
            model=model,
            tx=state.tx,
            loss_fn=self.loss_fn,
            names=tuple(layer.name for layer in all_layers),
            chosen=tuple(layer.name for layer in chosen),
            all_layers=tuple(all_layers),
            act=(act_name, act_fn),
            train=self.train,
        )
        compiled = self._compiled = jax.jit(pass_fn)
        return (lambda s: compiled(s.params, s.batch_stats, s.opt_state, self._x, self._y,
                                   extras)), [layer.name for layer in chosen], act_name  # fmt: skip

    def _record(self, run: Run) -> None:
        self._pending.append((int(run.step), self._fn(run.get_state())))
        self._last = int(run.step)

    def on_metrics(self, run: Run, first_step: int, metrics: dict[str, np.ndarray]) -> None:
        """Record when the run has crossed a multiple of ``every`` since the last record."""
        if self._fn is not None and run.step // self.every > self._last // self.every:
            self._record(run)

    def _fetch(self) -> None:
        if not self._pending:
            return
        fetched = jax.device_get([value for _, value in self._pending])
        for (step, _), (rows, loss) in zip(self._pending, fetched, strict=True):
            self.steps.append(step)
            self._rows.append(np.asarray(rows, np.float64))
            self.loss.append(float(loss))
        self._pending = []

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        """Bring the epoch's records to the host (one transfer)."""
        self._fetch()

    def on_train_end(self, run: Run) -> None:
        """Record the final state, fetch what is left, and keep the records in the history
        (``history.records["monitor"]``, saved by ``History.to_json``)."""
        if self._fn is not None and run.step > self._last:
            self._record(run)
        self._fetch()
        run.history.records["monitor"] = self.to_dict()

    def state_dict(self) -> dict[str, Any]:
        """The records so far (a resumed run continues them)."""
        self._fetch()
        return {"records": self.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the records of an interrupted run."""
        records = state.get("records") or {}
        self.steps = [int(s) for s in records.get("steps", [])]
        self.layers = list(records.get("layers", []))
        self.loss = [float(v) for v in records.get("loss", [])]
        values = records.get("values", {})
        self._rows = [
            np.array([[values[k][t][i] for k in MONITOR_STATS] for i in range(len(self.layers))])
            for t in range(len(self.steps))
        ]
        self._last = self.steps[-1] if self.steps else -1

    # -- results ---------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, np.ndarray]:
        """``{stat: array (steps, layers)}`` of everything recorded so far."""
        self._fetch()
        if not self._rows:
            return {k: np.zeros((0, len(self.layers))) for k in MONITOR_STATS}
        stacked = np.stack(self._rows)  # (steps, layers, stats)
        return {k: stacked[:, :, i] for i, k in enumerate(MONITOR_STATS)}

    def alerts(self) -> list[tuple[int, str, str]]:
        """The first step at which each layer went wrong: ``[(step, layer, what), ...]``.

        Reported per layer and kind, in step order: a non-finite gradient, a dead layer
        (``dead >= DEAD_FRACTION``), saturation (``saturated >= SATURATED_FRACTION``), and an
        update/parameter ratio above :data:`UPDATE_RATIO_LIMIT`.
        """
        v = self.values
        checks = (
            ("non-finite gradient", ~np.isfinite(v["grad_norm"])),
            (f"dead units >= {DEAD_FRACTION:.0%}", v["dead"] >= DEAD_FRACTION),
            (f"saturated >= {SATURATED_FRACTION:.0%}", v["saturated"] >= SATURATED_FRACTION),
            (f"update ratio > {UPDATE_RATIO_LIMIT:g}", v["update_ratio"] > UPDATE_RATIO_LIMIT),
        )  # fmt: skip
        found = []
        for what, bad in checks:
            for j, layer in enumerate(self.layers):
                hits = np.flatnonzero(bad[:, j])
                if hits.size:
                    t = hits[0]
                    found.append((self.steps[t], layer, f"{what} (from step {self.steps[t]})"))
        return sorted(found)

    def to_dict(self) -> dict[str, Any]:
        """The records as JSON-ready data (NaN as ``None``)."""
        values = self.values

        def clean(a: np.ndarray) -> list:
            return [[None if not math.isfinite(x) else float(x) for x in row] for row in a]

        return {
            "every": self.every,
            "steps": list(self.steps),
            "layers": list(self.layers),
            "loss": [None if not math.isfinite(x) else x for x in self.loss],
            "values": {k: clean(values[k]) for k in MONITOR_STATS},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    def plot(self, stats: tuple[str, ...] | None = None) -> Figure:
        """Heat maps of layers × recorded steps, one panel per statistic.

        Args:
            stats: which of :data:`MONITOR_STATS` to draw (default: all but ``saturated``
                when the activation does not saturate, e.g. ReLU).

        Returns:
            The matplotlib ``Figure``.
        """
        if stats is None:
            stats = tuple(
                s for s in MONITOR_STATS if s != "saturated" or self.kind in ("tanh", "sigmoid")
            )
        unknown = [s for s in stats if s not in MONITOR_STATS]
        if unknown:
            raise ValueError(f"Unknown monitor statistics {unknown}; expected {MONITOR_STATS}")
        return _heatmaps(self.steps, self.layers, self.values, stats)


def _monitor_pass(params, batch_stats, opt_state, x, y, extras, *, model, tx, loss_fn, names,
                  chosen, all_layers, act, train):  # fmt: skip
    """One instrumented pass: a ``(layers, stats)`` array and the batch loss (traced)."""
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    passed = instrumented_pass(model, variables, x, y, loss_fn, list(names), train=train,
                               rng=jax.random.key(0), extras=extras)  # fmt: skip
    grads = passed["param_grads"]
    updates, _ = tx.update(grads, opt_state, params)

    sq_params, sq_grads, sq_updates = map(_sum_squares, (params, grads, updates))
    acts = passed["acts"]
    groups = _groups(list(all_layers), set(acts))
    last_group = groups.get(all_layers[-1].name) if all_layers else None
    act_name, act_fn = act
    nan = jnp.array(jnp.nan, jnp.float32)
    rows = []
    for name in chosen:

        def norm(tree: Any, name: str = name) -> jax.Array:
            return jnp.sqrt(sum(own_leaves(tree, name).values(), jnp.zeros((), jnp.float32)))

        pn = norm(sq_params)
        std, dead, sat = nan, nan, nan
        owner = groups.get(name)
        if owner is not None:
            hidden = owner != last_group
            _, std, dead, sat, _, _ = _activation_stats(
                passed["preactivations"].get(owner, acts[owner]),
                act_fn if hidden else None,
                act_name if hidden else None,
                0,
            )
        ratio = jnp.where(pn > 0, norm(sq_updates) / pn, nan)
        rows.append(jnp.stack([norm(sq_grads), ratio, std, dead, sat]).astype(jnp.float32))
    return jnp.stack(rows), passed["loss"]


_LABELS = {
    "grad_norm": ("gradient norm", True),
    "update_ratio": ("|update| / |params|", True),
    "act_std": ("activation std", True),
    "dead": ("dead fraction", False),
    "saturated": ("saturated fraction", False),
}


def _heatmaps(steps: list[int], layers: list[str], values: dict, stats: tuple[str, ...]) -> Figure:
    """One heat map per statistic: layers (rows, input at the top) × recorded steps."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    fig, axes = plt.subplots(
        len(stats), 1, figsize=(9.0, 0.9 + (0.25 * len(layers) + 0.9) * len(stats)),
        squeeze=False, sharex=True, layout="constrained",
    )  # fmt: skip
    edges = np.array(steps, float)
    if len(edges) > 1:  # cell edges halfway between records
        mids = (edges[1:] + edges[:-1]) / 2
        edges = np.concatenate([[2 * edges[0] - mids[0]], mids, [2 * edges[-1] - mids[-1]]])
    else:
        edges = np.concatenate([edges - 0.5, edges + 0.5])
    for ax, stat in zip(axes[:, 0], stats, strict=True):
        label, log = _LABELS[stat]
        data = np.ma.masked_invalid(values[stat].T)
        positive = data[data > 0] if log else data
        if log and positive.count():
            norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-8), vmax=positive.max())
            data = np.ma.masked_less_equal(data, 0)
        else:
            norm = Normalize(0.0, 1.0) if stat in ("dead", "saturated") else None
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("0.8")  # a value a log scale cannot show (0) or none recorded (nan)
        mesh = ax.pcolormesh(edges, np.arange(len(layers) + 1), data, norm=norm, cmap=cmap)
        ax.set_yticks(np.arange(len(layers)) + 0.5, layers, fontsize=9)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10, loc="left")
        if np.ma.count_masked(data):
            ax.set_title(
                "grey: 0 or not recorded" if log else "grey: not recorded", fontsize=9, loc="right"
            )
        fig.colorbar(mesh, ax=ax, pad=0.01)
    axes[-1, 0].set_xlabel("step")
    return fig
