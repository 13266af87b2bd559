"""The learning-rate range test (Smith 2015/2017; fast.ai's ``lr_find``).

Train from the initial weights while the learning rate grows exponentially, step by step,
from ``start_lr`` to ``end_lr``; record the loss of every step; keep a bias-corrected
exponential moving average of it (``beta = 0.98``) and stop as soon as that exceeds ``4x``
its minimum (divergence) or stops being finite. The whole run is one compiled
``lax.scan``: after divergence the remaining steps are skipped with ``lax.cond`` and the
curve is cut there on the host. The compiled program is kept for its settings (model,
loss, optimiser and its keywords, range, steps, batch size, ``beta``, ``diverge``, when all
are hashable), so repeating the test with another ``seed`` or ``variables``, or on other
data of the same shapes, does not compile it again.

**Reading the curve.** The moving average lags the loss by about ``beta / (1 - beta)``
steps (49 at 0.98), half of a 100-step test: a loss that spikes and then collapses onto a
plateau (dead ReLUs at a too-large rate: the loss stops at ``ln C``) never pushes it past
``4x`` its minimum, and it is still falling when the range ends. So the suggestion is read
from a *centred* moving average of the raw losses, ``trend`` (window ``steps / 20``, at
least 3 steps), which has no lag:

- the **edge**, where the loss stops improving: the first step where the trend exceeds
  ``1.5x`` its running minimum (an instability spike or a rise; ``outcome`` ``"rose"``, or
  ``"diverged"`` when the run also stopped early) ends the useful range, and the edge is
  the trend's minimum before it; without such a step, a trend that reaches its minimum
  (within 5 % of its total fall) and stays there for the last tenth of the range has
  ``"plateaued"``, and the edge is where the plateau starts;
- ``lr_min``: the learning rate at the edge;
- ``lr_steep``: where the trend falls fastest before the edge, the most negative slope
  ``d trend / d log(lr)`` (central differences);
- ``suggestion = lr_min / 10``: an order of magnitude below the edge of stability
  (fast.ai's "minimum / 10" rule).

When the range shows no edge, the result says so (``outcome``): ``"falling"`` (the loss
was still falling at ``end_lr``) and ``"flat"`` (it never fell by 5 %) suggest
``lr_steep``, the best rate the test saw, and warn that the range should be extended.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl.analysis.scanning import checked_arrays, initial_state, sample_batch
from jdl.train import TrainState, as_optimizer, train_step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LRFinder", "lr_find"]


# What the range test saw (:attr:`LRFinder.outcome`), with the sentence printed for it.
_OUTCOMES = {
    "diverged": "the loss diverged",
    "rose": "the loss stopped improving and rose",
    "plateaued": "the loss stopped improving on a plateau",
    "falling": "no edge: the loss was still falling at the end of the range",
    "flat": "no edge: the loss did not fall anywhere in the range",
}


@dataclasses.dataclass
class LRFinder:
    """Result of :func:`lr_find`.

    Attributes:
      lrs: learning rate of every step run (up to divergence).
      losses: raw loss of every step.
      smoothed: EMA-smoothed, bias-corrected loss (what the divergence stop reads).
      trend: centred moving average of ``losses`` (no lag; what the suggestion reads).
      suggestion: the suggested learning rate (heuristic in the module docstring).
      lr_min: learning rate at the edge, where the loss stopped improving (with no edge,
        at the lowest trend seen).
      lr_steep: learning rate of steepest descent of the trend before the edge.
      diverged: whether the run stopped early on divergence.
      outcome: what the curve showed, ``"diverged"``, ``"rose"``
        or ``"plateaued"`` (an edge was found), ``"falling"`` or ``"flat"`` (none was).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    trend: np.ndarray
    suggestion: float
    lr_min: float
    lr_steep: float
    diverged: bool
    outcome: str

    @property
    def found_edge(self) -> bool:
        """Whether the range reached the rate where the loss stops improving."""
        return self.outcome in ("diverged", "rose", "plateaued")

    def __str__(self) -> str:
        rule = (
            f"edge/10; edge {self.lr_min:.3g}, steepest {self.lr_steep:.3g}"
            if self.found_edge
            else f"steepest descent seen; extend end_lr beyond {self.lrs[-1]:.2g}"
        )
        return (
            f"LR range test over {len(self.lrs)} steps ({self.lrs[0]:.2g} .. {self.lrs[-1]:.2g}"
            f"): {_OUTCOMES[self.outcome]}; suggestion {self.suggestion:.3g} ({rule})"
        )

    __repr__ = __str__

    def plot(self, *, ax: Axes | None = None, log_loss: bool = True) -> Figure:
        """Raw, smoothed and trend loss against learning rate (log x), suggestion marked.

        The y-axis shows the useful part of the range: from just below the lowest raw loss
        up to 4x the lowest trend (where the test counts the loss as diverged), or to the
        highest loss if that is lower; the losses above it (the divergence) run off the top.

        Args:
          ax: draw into these axes (default: a new figure).
          log_loss: a log-scale loss axis (differences between small losses stay visible).

        Returns:
          The matplotlib ``Figure`` (as every jdl ``plot()``; its axes: ``fig.axes``).
        """
        from jdl.analysis.plots import _plot_lr_find

        return _plot_lr_find(self, ax=ax, log_loss=log_loss).figure


def lr_find(
    model: nn.Module,
    data: Any,
    loss: str | Callable,
    *,
    optimizer: str | Callable = "sgd",
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    beta: float = 0.98,
    diverge: float = 4.0,
    variables: Any = None,
    seed: int = 0,
    **optimizer_kwargs: Any,
) -> LRFinder:
    """Run the learning-rate range test and suggest a learning rate.

    Args:
      model: any ``flax.linen`` module taking ``(x, *, train)``.
      data: training data: ``{"x", "y"}`` arrays, an ``(x, y)`` pair or a data source
        (held in memory).
      loss: a jdl loss name or function.
      optimizer: an optimiser name from :data:`jdl.train.OPTIMIZERS` or a function
        ``schedule -> optax.GradientTransformation``.
      start_lr, end_lr: the learning-rate range, traversed exponentially.
      steps: number of steps (the learning rate is multiplied by
        ``(end_lr / start_lr) ** (1 / (steps - 1))`` each step).
      batch_size: minibatch size (``None``: full batch).
      beta: EMA factor of the smoothing that the divergence stop reads.
      diverge: stop when the smoothed loss exceeds ``diverge x`` its minimum.
      variables: start from these variables (default: a fresh initialisation from ``seed``).
      seed: initialisation and sampling seed.
      **optimizer_kwargs: forwarded to a named optimiser (e.g. ``momentum=0.9``).

    Returns:
      An :class:`LRFinder` with the curve, the suggestion, what the curve showed
      (``outcome``) and ``.plot()``. A range with no edge warns (``UserWarning``).

    Example:
      >>> import numpy as np
      >>> from jdl.nn import MLP
      >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
      >>> data = {"x": x, "y": (x[:, 0] > 0).astype("int32")}
      >>> res = lr_find(MLP(widths=(16,), num_outputs=2), data, "cross_entropy",
      ...               optimizer="adam")
      >>> res.outcome, 1e-3 < res.suggestion < 1.0
      ('rose', True)
    """
    if not (0 < start_lr < end_lr):
        raise ValueError(f"Need 0 < start_lr < end_lr; got {start_lr}, {end_lr}.")
    if steps < 3:
        raise ValueError(f"steps must be >= 3; got {steps}.")
    arrays = {k: jnp.asarray(v) for k, v in checked_arrays(model, data, loss).items()}
    x = arrays["x"]
    settings = (
        model,
        loss,
        optimizer,
        tuple(sorted(optimizer_kwargs.items())),
        float(start_lr),
        float(end_lr),
        int(steps),
        batch_size,
        float(beta),
        float(diverge),
    )
    try:
        hash(settings)
    except TypeError:  # e.g. an unhashable optimiser keyword: build a program for this call
        tx, run = _range_program.__wrapped__(*settings)
    else:  # the same test again (another seed, other data of the same shapes): no recompile
        tx, run = _range_program(*settings)
    state = initial_state(model, tx, x, seed, variables)
    out = run(state.arrays, arrays, jax.random.key(seed + 1))
    losses, smoothed, skipped = (np.asarray(a) for a in jax.device_get(out))
    ran = int(np.sum(~skipped))
    lrs = start_lr * _factor(start_lr, end_lr, steps) ** np.arange(steps)
    diverged = ran < steps or not np.isfinite(smoothed[ran - 1])
    lrs, losses, smoothed = lrs[:ran], losses[:ran], smoothed[:ran]
    return _read_curve(lrs, losses, smoothed, diverged)


def _factor(start_lr: float, end_lr: float, steps: int) -> float:
    """The learning rate's growth per step."""
    return (end_lr / start_lr) ** (1.0 / (steps - 1))


@functools.lru_cache(maxsize=16)
def _range_program(
    model: nn.Module,
    loss: str | Callable,
    optimizer: str | Callable,
    optimizer_kwargs: tuple[tuple[str, Any], ...],
    start_lr: float,
    end_lr: float,
    steps: int,
    batch_size: int | None,
    beta: float,
    diverge: float,
) -> tuple[Any, Callable[..., Any]]:
    """``(tx, run)``: the range test's optimiser and its compiled scan, ``run(state.arrays,
    arrays, key) -> (losses, smoothed, skipped)``. Cached on the settings, so repeating a
    test (other seeds, other data of the same shapes) reuses the compiled program."""
    factor = _factor(start_lr, end_lr, steps)

    def schedule(count: jax.Array) -> jax.Array:
        return start_lr * factor ** jnp.asarray(count, jnp.float32)

    # The range test sets the learning rate: a name or a function schedule -> transformation.
    tx = as_optimizer(
        optimizer, schedule, learning_rate_arg="start_lr/end_lr", **dict(optimizer_kwargs)
    )

    @jax.jit
    def run(
        fields: dict[str, Any], arrays: dict[str, jax.Array], key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        state = TrainState(**fields, model=model, tx=tx)

        def step(
            carry: tuple[TrainState, jax.Array, jax.Array, jax.Array], i: jax.Array
        ) -> tuple[
            tuple[TrainState, jax.Array, jax.Array, jax.Array],
            tuple[jax.Array, jax.Array, jax.Array],
        ]:
            st, avg, best, stopped = carry

            def live(st: TrainState) -> tuple[TrainState, jax.Array]:
                batch = sample_batch(jax.random.fold_in(key, i), arrays, batch_size)
                new, m = train_step(st, batch, loss_fn=loss)
                return new, m["loss"].astype(jnp.float32)

            def skip(st: TrainState) -> tuple[TrainState, jax.Array]:
                return st, jnp.asarray(jnp.nan, jnp.float32)

            st, value = jax.lax.cond(stopped, skip, live, st)
            avg = jnp.where(stopped, avg, beta * avg + (1 - beta) * value)
            smooth = avg / (1 - beta ** (i + 1).astype(jnp.float32))
            best = jnp.where(stopped, best, jnp.minimum(best, smooth))
            now_stopped = stopped | ~jnp.isfinite(smooth) | (smooth > diverge * best)
            return (st, avg, best, now_stopped), (value, smooth, stopped)

        init = (state, jnp.zeros((), jnp.float32), jnp.asarray(jnp.inf), jnp.asarray(False))
        _, out = jax.lax.scan(step, init, jnp.arange(steps))
        return out

    return tx, run


#: A trend above this multiple of its running minimum ends the useful range.
_RISE = 1.5
#: Fraction of the total fall within which the trend counts as at its minimum (plateau).
_PLATEAU_TOL = 0.05


def _centred_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` steps (shorter at the ends; non-finite ignored,
    ``inf`` where a window holds no finite value)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(finite)])
    idx = np.arange(len(values))
    lo = np.maximum(idx - window // 2, 0)
    hi = np.minimum(idx + window // 2 + 1, len(values))
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.inf)


def _read_curve(
    lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, diverged: bool
) -> LRFinder:
    """Find the edge in the curve and build the result (rules in the module docstring)."""
    if not np.isfinite(losses).any():
        raise FloatingPointError(
            "lr_find: the loss was not finite from the first step; check the inputs, the "
            "loss and start_lr."
        )
    n = len(losses)
    window = max(3, (n // 20) | 1)
    trend = _centred_average(losses, window)
    running_min = np.minimum.accumulate(trend)
    rises = np.nonzero(trend[1:] > _RISE * running_min[:-1])[0]
    if rises.size:
        edge = int(np.argmin(trend[: rises[0] + 1]))
        outcome = "diverged" if diverged else "rose"
    else:
        lowest = int(np.argmin(trend))
        fall = trend[0] - trend[lowest]
        reached = int(np.nonzero(trend <= trend[lowest] + _PLATEAU_TOL * fall)[0][0])
        if fall <= _PLATEAU_TOL * abs(trend[0]):
            edge, outcome = lowest, "flat"
        elif n - 1 - reached >= max(window, n // 10):
            edge, outcome = reached, "plateaued"
        else:
            edge, outcome = lowest, "diverged" if diverged else "falling"
    steep = edge
    if edge >= 2:
        slope = np.gradient(trend[: edge + 1], np.log(lrs[: edge + 1]))
        if np.isfinite(slope).any():
            steep = int(np.nanargmin(np.where(np.isfinite(slope), slope, np.nan)))
    lr_min, lr_steep = float(lrs[edge]), float(lrs[steep])
    result = LRFinder(
        lrs,
        losses,
        smoothed,
        trend,
        lr_min / 10.0 if outcome in ("diverged", "rose", "plateaued") else lr_steep,
        lr_min,
        lr_steep,
        bool(diverged),
        outcome,
    )
    if not result.found_edge:
        warnings.warn(
            f"lr_find: {_OUTCOMES[outcome]} (learning rates {lrs[0]:.2g} .. {lrs[-1]:.2g}); the "
            f"suggestion {result.suggestion:.3g} is where the loss fell fastest. Raise end_lr "
            "(or steps) until the loss stops improving.",
            stacklevel=3,
        )
    return result
