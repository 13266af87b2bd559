"""The synthetic "coffee demand by time of day" regression curve.

Demand is a low night-time baseline plus four Gaussian bumps at the coffee breaks of an
office day: the tallest at 08:00 (arrival), then 10:30, 13:00 (after lunch) and 15:30.
The curve is smooth, lies in ``[0.05, 0.9]`` and is the ground truth of the bundled
``"coffee"`` dataset, whose targets add small seeded Gaussian noise to it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["coffee_demand"]

#: Demand outside the breaks (night time).
_BASELINE = 0.05
#: ``(hour, height, width in hours)`` of each coffee-break bump, morning first.
_PEAKS: tuple[tuple[float, float, float], ...] = (
    (8.0, 0.85, 0.9),
    (10.5, 0.45, 0.5),
    (13.0, 0.5, 0.6),
    (15.5, 0.35, 0.55),
)
#: Standard deviation of the Gaussian noise added to the dataset's targets.
_NOISE_STDDEV = 0.03
#: Inputs of the dataset are ``hour / _HOURS_PER_DAY``, the fraction of the day.
_HOURS_PER_DAY = 24.0


def coffee_demand(hours: npt.ArrayLike) -> np.ndarray:
    """Noiseless coffee demand at the given times of day.

    Args:
        hours: Time of day in hours (``0`` is midnight, ``13.5`` is 13:30), any shape.
            Note that the ``"coffee"`` dataset's inputs ``x`` are ``hours / 24``; call
            ``coffee_demand(24 * x)`` to get the truth for them.

    Returns:
        A float64 array of the same shape as ``hours`` with values in ``[0.05, 0.9]``:
        ``0.05 + sum(height * exp(-((hours - hour) / width) ** 2 / 2))`` over the four
        bumps ``(hour, height, width)``: ``(8, 0.85, 0.9)``, ``(10.5, 0.45, 0.5)``,
        ``(13, 0.5, 0.6)`` and ``(15.5, 0.35, 0.55)``.

    Raises:
        TypeError: If ``hours`` is not numeric.

    Example:
        >>> float(coffee_demand(8.0)) > float(coffee_demand(13.0)) > float(coffee_demand(3.0))
        True
    """
    h = np.asarray(hours)
    if not (np.issubdtype(h.dtype, np.number) or h.dtype == np.bool_) or np.iscomplexobj(h):
        raise TypeError(f"hours must be a real number or array of them, got dtype {h.dtype}")
    h = h.astype(np.float64)
    demand = np.full(h.shape, _BASELINE)
    for centre, height, width in _PEAKS:
        demand = demand + height * np.exp(-0.5 * ((h - centre) / width) ** 2)
    return demand


def _make_coffee_split(num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples one split of the ``"coffee"`` dataset.

    Hours are drawn uniformly from ``[0, 24)`` and the targets are
    ``coffee_demand(hours) + N(0, _NOISE_STDDEV**2)``, both with
    ``np.random.default_rng(seed)``.

    Args:
        num_examples: Number of examples, at least 1.
        seed: Seed of the random generator.

    Returns:
        ``(x, y)``: float32 arrays of shape ``(num_examples, 1)``, ``x`` the fraction of
        the day (``hours / 24``, in ``[0, 1)``) and ``y`` the noisy demand.

    Raises:
        ValueError: If ``num_examples`` is smaller than 1.
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}")
    rng = np.random.default_rng(seed)
    hours = rng.uniform(0.0, _HOURS_PER_DAY, size=num_examples)
    demand = coffee_demand(hours) + rng.normal(0.0, _NOISE_STDDEV, size=num_examples)
    x = (hours / _HOURS_PER_DAY).astype(np.float32)[:, None]
    y = demand.astype(np.float32)[:, None]
    return x, y
