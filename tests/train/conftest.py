"""Small models and in-memory sources (jdl.data.from_arrays) for the training tests, and
the ways a checkpoint gets corrupted (``CORRUPTIONS``; tests/stress uses them too)."""

from __future__ import annotations

import glob
import os
import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest

from jdl.data import ArraySource, from_arrays

#: Backend compilations seen since the tests started (jax.monitoring's compile events).
_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: _COMPILES.append(name) if "backend_compile" in name else None
)


def compiles(fn, *args, **kwargs) -> int:
    """How many programs XLA compiles while ``fn(*args, **kwargs)`` runs."""
    before = len(_COMPILES)
    fn(*args, **kwargs)
    return len(_COMPILES) - before


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


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _data_files(step_dir):
    files = glob.glob(f"{step_dir}/state/**/d/*", recursive=True)
    assert files  # the layout is what the test corrupts
    return files


#: How a checkpoint's step directory ``d`` gets damaged (a crash or a full disk while it
#: was written or copied): each must make it unreadable, never silently wrong.
CORRUPTIONS = {
    "truncated data": lambda d: [_truncate(p) for p in _data_files(d)],
    "truncated manifest": lambda d: [
        _truncate(p) for p in glob.glob(f"{d}/state/**/manifest.ocdbt", recursive=True)
    ],
    "emptied metadata": lambda d: open(f"{d}/state/_METADATA", "w").close(),
    "deleted state": lambda d: shutil.rmtree(f"{d}/state"),
    "garbage meta json": lambda d: open(f"{d}/meta/metadata", "w").write('{"history": [1, '),
}


@pytest.fixture
def train_source():
    return blobs(256, seed=0)


@pytest.fixture
def val_source():
    return blobs(90, seed=1)
