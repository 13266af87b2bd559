"""Small in-memory datasets for the analysis tests (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest

import jdl.data


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """Digits train split, flattened to 64 features scaled to [0, 1]."""
    a = jdl.data.as_arrays(jdl.data.load("digits", "train"))
    x = a["x"].reshape(len(a["x"]), -1).astype(np.float32) / 16.0
    return {"x": x, "y": a["y"].astype(np.int32)}


@pytest.fixture(scope="session")
def digits_std(digits) -> dict[str, np.ndarray]:
    """Digits with standardised features."""
    x = digits["x"]
    return {"x": (x - x.mean(0)) / (x.std(0) + 1e-6), "y": digits["y"]}


@pytest.fixture(scope="session")
def iris() -> dict[str, dict[str, np.ndarray]]:
    """Iris train and test splits, raw (unstandardised) features."""
    return {
        split: {
            k: np.asarray(v) for k, v in jdl.data.as_arrays(jdl.data.load("iris", split)).items()
        }
        for split in ("train", "test")
    }
