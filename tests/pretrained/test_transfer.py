"""Transfer learning on MNIST-1D (digits 0-4 -> 5-9, 50 labels per class), shortened.

The full version is the tutorial examples/05_practical/plot_transfer_learning.py.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax

import jdl
from jdl import nn, pretrained

from .conftest import arrays


def cnn(num_outputs):
    return nn.get_model("mnist1d_cnn", num_outputs=num_outputs)


def test_pretrained_features_beat_scratch_and_random_features(tmp_path):
    train = jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))
    test = jdl.data.as_arrays(jdl.data.load("mnist1d", split="test"))
    a = train["y"] < 5
    rng = np.random.default_rng(0)
    few = np.concatenate(
        [rng.choice(np.flatnonzero(train["y"] == c), 50, replace=False) for c in range(5, 10)]
    )
    b_train = arrays(train["x"][few], train["y"][few] - 5)
    b = test["y"] >= 5
    b_test = arrays(test["x"][b], test["y"][b] - 5)

    history = jdl.fit(
        cnn(5),
        arrays(train["x"][a], train["y"][a]),
        batch_size=100,
        optimizer=optax.adam(1e-2),
        loss="cross_entropy",
        steps=300,
        verbose=0,
    )
    path = pretrained.save(
        tmp_path / "cnn.safetensors", cnn(5), history.variables, input_shape=(1, 40)
    )
    loaded = pretrained.load(path)

    # One optimiser object per kind and equal models: jit compiles each step only once.
    adam = optax.adam(1e-2)
    head_only = pretrained.freeze(adam, ["head"])
    step = jax.jit(functools.partial(jdl.train.train_step, loss_fn="cross_entropy"))
    predict = jax.jit(lambda v, x: cnn(5).apply(v, x, train=False))

    def accuracy(model, variables, optimizer, steps=200):
        state = pretrained.finetune_state(model, variables, optimizer)
        order = np.random.default_rng(1)
        for _ in range(steps):
            i = order.choice(len(b_train), 50, replace=False)
            state, _ = step(state, {"x": b_train.x[i], "y": b_train.y[i]})
        return float(np.mean(np.argmax(predict(state.variables, b_test.x), -1) == b_test.y))

    model, variables = pretrained.replace_head(
        loaded.model, loaded.variables, 5, input_shape=(1, 40)
    )
    assert model == cnn(5)
    fine_tuned = accuracy(model, variables, adam)
    frozen = accuracy(model, variables, head_only)
    random_vars = cnn(5).init(jax.random.key(1), np.zeros((1, 40), np.float32), train=False)
    scratch = accuracy(cnn(5), random_vars, adam)
    random_probe = accuracy(cnn(5), random_vars, head_only)
    print(
        f"fine-tuned {fine_tuned:.3f}, frozen {frozen:.3f}, scratch {scratch:.3f}, "
        f"random probe {random_probe:.3f}"
    )
    assert fine_tuned >= scratch + 0.05
    assert frozen >= random_probe + 0.10
    assert fine_tuned > 0.6
