"""The learning-rate range test (Smith 2015/2017; fast.ai's ``lr_find``).

Train from the initial weights while the learning rate grows exponentially, step by step,
from ``start_lr`` to ``end_lr``; record the loss of every step; smooth it with a
bias-corrected exponential moving average (``beta = 0.98``); stop as soon as the smoothed
loss exceeds ``4x`` its minimum (divergence) or stops being finite. The whole run is one
compiled ``lax.scan``: after divergence the remaining steps are skipped with ``lax.cond``
and the curve is cut there on the host.

**Suggestion heuristic.** With ``lrs`` and the smoothed losses up to divergence:

- ``lr_min``: the learning rate at the minimum of the smoothed loss (where training is
  fastest but already close to unstable);
- ``lr_steep``: the learning rate where the smoothed loss falls fastest, i.e. the most
  negative slope ``d loss / d log(lr)`` (central differences), searched before the
  minimum;
- ``suggestion = min(lr_min / 10, lr_steep)``: an order of magnitude below the edge of
  stability (fast.ai's "minimum / 10" rule), but never above the steepest point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl.analysis.scanning import as_arrays, initial_state, sample_batch
from jdl.train import train_step

__all__ = ["LRFinder", "lr_find"]


@dataclasses.dataclass
class LRFinder:
    """Result of :func:`lr_find`.

    Attributes:
      lrs: learning rate of every step run (up to divergence).
      losses: raw loss of every step.
      smoothed: EMA-smoothed, bias-corrected loss.
      suggestion: the suggested learning rate (heuristic in the module docstring).
      lr_min: learning rate at the minimum of the smoothed loss.
      lr_steep: learning rate of steepest descent of the smoothed loss.
      diverged: whether the run stopped early on divergence.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    lr_min: float
    lr_steep: float
    diverged: bool

    def __str__(self) -> str:
        return (
            f"LR range test over {len(self.lrs)} steps ({self.lrs[0]:.2g} .. {self.lrs[-1]:.2g}"
            f"{', diverged' if self.diverged else ''}): suggestion {self.suggestion:.3g} "
            f"(min/10 {self.lr_min / 10:.3g}, steepest {self.lr_steep:.3g})"
        )

    __repr__ = __str__

    def plot(self, *, ax=None):
        """Smoothed loss against learning rate (log x), with the suggestion marked.

        Returns:
          The matplotlib ``Axes``.
        """
        from jdl.analysis.plots import plot_lr_find

        return plot_lr_find(self, ax=ax)


def _optimizer(optimizer: str | Callable, schedule: optax.Schedule, kwargs: dict):
    if isinstance(optimizer, str):
        from jdl.train import OPTIMIZERS

        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}; expected one of "
                f"{sorted(OPTIMIZERS)} or a callable lr -> transformation."
            )
        return OPTIMIZERS[optimizer](schedule, **kwargs)
    if callable(optimizer):
        return optimizer(schedule)
    raise TypeError(
        "optimizer must be a name ('sgd', 'momentum', 'adam', ...) or a function taking a "
        f"learning-rate schedule and returning an optax transformation; got {optimizer!r}."
    )


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
    **optimizer_kwargs,
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
      beta: EMA factor of the loss smoothing.
      diverge: stop when the smoothed loss exceeds ``diverge x`` its minimum.
      variables: start from these variables (default: a fresh initialisation from ``seed``).
      seed: initialisation and sampling seed.
      **optimizer_kwargs: forwarded to a named optimiser (e.g. ``momentum=0.9``).

    Returns:
      An :class:`LRFinder` with the curve, the suggestion and ``.plot()``.

    Example:
      >>> import numpy as np
      >>> from jdl.nn import MLP
      >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
      >>> data = {"x": x, "y": (x[:, 0] > 0).astype("int32")}
      >>> res = lr_find(MLP(widths=(16,), num_outputs=2), data, "cross_entropy")
      >>> 1e-4 < res.suggestion < 10
      True
    """
    if not (0 < start_lr < end_lr):
        raise ValueError(f"Need 0 < start_lr < end_lr; got {start_lr}, {end_lr}.")
    if steps < 3:
        raise ValueError(f"steps must be >= 3; got {steps}.")
    x, y = (jnp.asarray(a) for a in as_arrays(data))
    factor = (end_lr / start_lr) ** (1.0 / (steps - 1))

    def schedule(count):
        return start_lr * factor ** jnp.asarray(count, jnp.float32)

    tx = _optimizer(optimizer, schedule, optimizer_kwargs)
    state = initial_state(model, tx, x, seed, variables)
    key = jax.random.key(seed + 1)

    @jax.jit
    def run(state):
        def step(carry, i):
            st, avg, best, stopped = carry

            def live(st):
                batch = sample_batch(jax.random.fold_in(key, i), x, y, batch_size)
                new, m = train_step(st, batch, loss_fn=loss)
                return new, m["loss"].astype(jnp.float32)

            def skip(st):
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

    losses, smoothed, skipped = (np.asarray(a) for a in jax.device_get(run(state)))
    ran = int(np.sum(~skipped))
    lrs = start_lr * factor ** np.arange(steps)
    diverged = ran < steps or not np.isfinite(smoothed[ran - 1])
    lrs, losses, smoothed = lrs[:ran], losses[:ran], smoothed[:ran]
    lr_min, lr_steep = _suggest(lrs, smoothed)
    suggestion = min(lr_min / 10.0, lr_steep)
    return LRFinder(lrs, losses, smoothed, suggestion, lr_min, lr_steep, bool(diverged))


def _suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise FloatingPointError(
            "lr_find: the loss was not finite from the first step; check the inputs, the "
            "loss and start_lr."
        )
    values = np.where(finite, smoothed, np.inf)
    i_min = int(np.argmin(values))
    lr_min = float(lrs[i_min])
    if i_min < 2:
        return lr_min, lr_min
    log_lr = np.log(lrs[: i_min + 1])
    slope = np.gradient(values[: i_min + 1], log_lr)
    i_steep = int(np.argmin(slope))
    return lr_min, float(lrs[i_steep]) if math.isfinite(slope[i_steep]) else lr_min
