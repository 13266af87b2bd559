"""state_from_variables: one way to build a TrainState from given variables."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TinyMLP

from jdl import pretrained
from jdl.train import TrainState, create_state, state_from_variables

X = np.ones((1, 5), np.float32)


def test_same_seed_gives_create_states_state():
    tx = optax.adam(1e-3)
    fresh = create_state(TinyMLP(batch_norm=True), tx, X, seed=3)
    again = state_from_variables(TinyMLP(batch_norm=True), tx, fresh.variables, 3)
    assert set(again.arrays) == {"step", "params", "batch_stats", "opt_state", "rng"}
    jax.tree.map(np.testing.assert_array_equal, again.arrays, fresh.arrays)
    assert again.tx is tx and int(again.step) == 0


def test_copies_unless_told_not_to():
    variables = create_state(TinyMLP(), optax.sgd(0.1), X).variables
    copied = state_from_variables(TinyMLP(), optax.sgd(0.1), variables)
    shared = state_from_variables(TinyMLP(), optax.sgd(0.1), variables, copy=False)
    kernel = variables["params"]["Dense_0"]["kernel"]
    assert copied.params["Dense_0"]["kernel"] is not kernel
    assert shared.params["Dense_0"]["kernel"] is kernel
    assert shared.batch_stats == {}


def test_evaluation_state_and_other_inputs():
    state = create_state(TinyMLP(), optax.sgd(0.1), X)
    for given in (state, state.variables):  # a TrainState (or History) gives its variables
        evaluation = state_from_variables(TinyMLP(), None, given)
        assert evaluation.opt_state == optax.identity().init(state.params)
    rebuilt = TrainState(**state.arrays, model=state.model, tx=state.tx)
    jax.tree.map(np.testing.assert_array_equal, rebuilt, state)
    with pytest.raises(TypeError, match=r'"params" entry .* got \[\'kernel\'\]'):
        state_from_variables(TinyMLP(), None, {"kernel": jnp.ones(2)})
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        state_from_variables(TinyMLP(), "adam", state.variables)


def test_finetune_state_is_state_from_variables():
    tx = optax.sgd(0.1)
    variables = create_state(TinyMLP(), tx, X).variables
    a = pretrained.finetune_state(TinyMLP(), variables, tx, seed=2)
    b = state_from_variables(TinyMLP(), tx, variables, 2)
    jax.tree.map(np.testing.assert_array_equal, a.arrays, b.arrays)
