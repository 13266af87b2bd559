"""Small models and in-memory sources (jdl.data.from_arrays) for the training tests."""

from __future__ import annotations

import flax.linen as nn
import numpy as np
import pytest

from jdl.data import ArraySource, from_arrays


class TinyMLP(nn.Module):
    """A 2-layer MLP with optional BatchNorm/dropout, synchronised BN under pmap."""

    num_outputs: int = 3
    batch_norm: bool = False
    dropout: float = 0.0
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(16)(x)
        if self.batch_norm:
            x = nn.BatchNorm(use_running_average=not train, axis_name=self.bn_axis_name)(x)
        x = nn.relu(x)
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_outputs)(x)


def blobs(n: int, seed: int = 0, features: int = 5, classes: int = 3) -> ArraySource:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = np.random.default_rng(123).normal(size=(classes, features)) * 3
    x = centres[y] + rng.normal(size=(n, features))
    return from_arrays(x.astype(np.float32), y.astype(np.int64))


@pytest.fixture
def train_source():
    return blobs(256, seed=0)


@pytest.fixture
def val_source():
    return blobs(90, seed=1)
