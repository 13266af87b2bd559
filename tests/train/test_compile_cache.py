"""A second fit / evaluate / create_state with the same shapes compiles nothing (issue #13).

Compilations are counted with jax.monitoring's backend-compile events, the ones XLA pays
for: ``fit`` reuses its initialisation, training and evaluation steps across calls with
the same model, loss, metrics, optimiser settings and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TinyMLP, blobs, compiles

import jdl
from jdl.train import create_state, optimizer


@pytest.fixture(scope="module")
def data():
    source = blobs(96, seed=3)
    return source.x, source.y


def fit(data, **kw):
    x, y = data
    settings = dict(batch_size=16, epochs=2, optimizer=("adam", 1e-3), loss="cross_entropy",
                    verbose=0, validation=(x[:32], y[:32]))  # fmt: skip
    return jdl.fit(TinyMLP(num_outputs=3), (x, y), **{**settings, **kw})


def test_a_second_identical_fit_compiles_nothing(data):
    compiles(fit, data)
    assert compiles(fit, data) == 0
    assert compiles(fit, data, seed=1) == 0  # another seed: other numbers, same programs


def test_a_second_evaluate_compiles_nothing(data):
    history = fit(data)
    x, y = data
    compiles(jdl.evaluate, TinyMLP(num_outputs=3), history.variables, (x, y))
    assert compiles(jdl.evaluate, TinyMLP(num_outputs=3), history.variables, (x, y)) == 0


def test_create_state_compiles_init_once_per_model_and_shape(data):
    x, _ = data
    tx = optimizer("sgd", 0.1)
    model = TinyMLP(num_outputs=4)
    compiles(create_state, model, tx, x[:2])
    assert compiles(create_state, model, tx, x[:2], seed=5) == 0
    assert compiles(create_state, TinyMLP(num_outputs=4), tx, x[:2]) == 0  # an equal model
    assert compiles(create_state, model, tx, x[:3]) >= 1  # another shape: its own program


def test_a_model_with_an_unhashable_field_still_initialises():
    model = jdl.nn.MLP(widths=[8], num_outputs=2)  # a list: no hash, so no cache
    with pytest.raises(TypeError):
        hash(model)
    state = create_state(model, optimizer("sgd", 0.1), np.ones((1, 3), np.float32))
    assert state.params["head"]["kernel"].shape == (8, 2)


def test_the_same_optimizer_arguments_give_the_same_transformation():
    assert optimizer("adam", 1e-3) is optimizer("adam", 1e-3)
    assert optimizer("adam", 1e-3) is not optimizer("adam", 2e-3)
    assert optimizer("sgd", 1, momentum=0.9) is not optimizer("sgd", 1.0, momentum=0.9)
    with pytest.raises(TypeError, match="bool"):  # refused, even after the int 1 was made
        optimizer("sgd", True)
