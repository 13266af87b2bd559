"""The coffee-demand curve and the sampling of its dataset."""

import numpy as np
import pytest

from jdl.data import coffee_demand
from jdl.data.coffee import _BASELINE, _NOISE_STDDEV, _PEAKS, _make_coffee_split


def test_curve_shape_and_range():
    hours = np.linspace(0.0, 24.0, 24 * 60 + 1)
    demand = coffee_demand(hours)
    assert demand.shape == hours.shape
    assert demand.dtype == np.float64
    assert demand.min() == pytest.approx(_BASELINE, abs=1e-6)  # night time
    assert 0.85 < demand.max() < 0.95
    assert coffee_demand(np.zeros((2, 3))).shape == (2, 3)
    assert np.ndim(coffee_demand(8.0)) == 0


def test_peaks_at_the_breaks_tallest_in_the_morning():
    hours = np.linspace(0.0, 24.0, 24 * 60 + 1)  # one point per minute
    demand = coffee_demand(hours)
    inner = demand[1:-1]
    is_max = (inner > demand[:-2]) & (inner > demand[2:])
    peak_hours = hours[1:-1][is_max]
    np.testing.assert_allclose(peak_hours, [8.0, 10.5, 13.0, 15.5], atol=0.05)
    heights = coffee_demand(peak_hours)
    assert np.argmax(heights) == 0  # 08:00 is the tallest
    assert heights[0] > 1.5 * heights[1:].max()
    assert [p[0] for p in _PEAKS] == [8.0, 10.5, 13.0, 15.5]


def test_curve_formula_at_a_point():
    expected = _BASELINE + sum(h * np.exp(-0.5 * ((12.0 - c) / w) ** 2) for c, h, w in _PEAKS)
    assert coffee_demand(12.0) == pytest.approx(expected, rel=1e-12)


def test_curve_rejects_non_numbers():
    with pytest.raises(TypeError, match="real number"):
        coffee_demand(np.array(["8"]))
    with pytest.raises(TypeError, match="real number"):
        coffee_demand(np.array([1 + 2j]))


def test_split_sampling():
    x, y = _make_coffee_split(4000, seed=3)
    assert x.shape == y.shape == (4000, 1)
    assert x.dtype == y.dtype == np.float32
    assert 0.0 <= x.min() and x.max() < 1.0
    residual = y[:, 0] - coffee_demand(24.0 * x[:, 0].astype(np.float64))
    assert abs(residual.mean()) < 3 * _NOISE_STDDEV / np.sqrt(4000)
    assert residual.std() == pytest.approx(_NOISE_STDDEV, rel=0.06)
    x2, y2 = _make_coffee_split(4000, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = _make_coffee_split(4000, seed=4)
    assert not np.array_equal(x, x3)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        _make_coffee_split(0, seed=0)
