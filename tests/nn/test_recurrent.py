"""Tests for jdl.nn.RNNClassifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import RNNClassifier, count_params, get_model

from ._helpers import random_variables, run, shapes_of, train_fn, variable_shapes

CELLS = ("simple", "lstm", "gru")


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def apply_fn(model):
    return jax.jit(lambda v, x, lengths: model.apply(v, x, train=False, lengths=lengths))


def test_parameter_tree_and_gru_count():
    # The MNIST-1D paper's GRU classifier reads one feature per step.
    model = RNNClassifier(num_outputs=10, cell="gru", hidden_size=6)
    shapes = variable_shapes(model, jnp.ones((1, 40)))
    cell = shapes_of(shapes["params"]["rnn_0"]["cell"])
    assert cell == {
        "ir": {"kernel": (1, 6), "bias": (6,)},
        "iz": {"kernel": (1, 6), "bias": (6,)},
        "in": {"kernel": (1, 6), "bias": (6,)},
        "hr": {"kernel": (6, 6)},
        "hz": {"kernel": (6, 6)},
        "hn": {"kernel": (6, 6), "bias": (6,)},
    }
    # 3 (in*h + h) + 3 h^2 + h, then the head h * 10 + 10.
    assert count_params(shapes) == 3 * (6 + 6) + 3 * 36 + 6 + 70


def test_lstm_uses_lstmcell_parameter_names_and_bidirectional_layout():
    model = RNNClassifier(
        num_outputs=3, cell="lstm", hidden_size=4, num_layers=2, bidirectional=True
    )
    shapes = variable_shapes(model, jnp.ones((1, 5, 2)))["params"]
    assert set(shapes) == {"rnn_0", "rnn_1", "head"}
    assert set(shapes["rnn_0"]) == {"forward_rnn", "backward_rnn"}
    cell = shapes_of(shapes["rnn_1"]["backward_rnn"]["cell"])
    assert set(cell) == {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}
    assert cell["ii"] == {"kernel": (8, 4)}  # layer 2 reads both directions of layer 1
    assert cell["hi"] == {"kernel": (4, 4), "bias": (4,)}
    assert shapes["head"]["kernel"].shape == (8, 3)


def test_simple_cell_matches_a_hand_written_recurrence():
    model = RNNClassifier(num_outputs=2, cell="simple", hidden_size=5)
    x = x_of((3, 7, 2))
    variables = random_variables(model, x)
    p = variables["params"]
    h = jnp.zeros((3, 5))
    for t in range(7):
        h = jnp.tanh(
            x[:, t] @ p["rnn_0"]["cell"]["i"]["kernel"]
            + p["rnn_0"]["cell"]["i"]["bias"]
            + h @ p["rnn_0"]["cell"]["h"]["kernel"]
        )
    expected = h @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(
        run(model, variables, x, train=False), expected, rtol=1e-5, atol=1e-6
    )


def test_time_only_input_gets_a_feature_axis():
    model = RNNClassifier(num_outputs=4, cell="gru", hidden_size=3)
    x = x_of((2, 9))
    variables = random_variables(model, x)
    out = run(model, variables, x, train=False)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(run(model, variables, x[..., None], train=False), out, rtol=1e-6)


@pytest.mark.parametrize(
    ("cell", "bidirectional", "num_layers"),
    [("simple", True, 2), ("lstm", True, 2), ("gru", True, 2), ("lstm", False, 2)],
)
def test_padding_beyond_lengths_is_ignored(cell, bidirectional, num_layers):
    model = RNNClassifier(
        num_outputs=3,
        cell=cell,
        hidden_size=4,
        num_layers=num_layers,
        bidirectional=bidirectional,
    )
    x = x_of((4, 6, 2))
    lengths = jnp.array([6, 3, 1, 4])
    variables = random_variables(model, x)
    apply = apply_fn(model)
    out = apply(variables, x, lengths)
    assert out.shape == (4, 3)
    padded = jnp.where(jnp.arange(6)[None, :, None] < lengths[:, None, None], x, 1e3)
    np.testing.assert_allclose(apply(variables, padded, lengths), out, rtol=1e-5, atol=1e-6)
    # Reading the padding (full lengths) does change the outputs of the padded sequences.
    full = apply(variables, padded, jnp.full(4, 6))
    np.testing.assert_allclose(full[0], out[0], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(full[1:] - out[1:]).min(axis=1).max()) > 1e-3


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_read_each_sequence_at_its_own_last_step(bidirectional):
    model = RNNClassifier(
        num_outputs=3, cell="gru", hidden_size=4, num_layers=2, bidirectional=bidirectional
    )
    x = x_of((3, 6, 2))
    variables = random_variables(model, x)
    out = apply_fn(model)(variables, x, jnp.array([6, 3, 3]))
    # The output for a sequence of length 3 equals the one for that sequence alone, unpadded.
    alone = run(model, variables, x[1:, :3], train=False)
    np.testing.assert_allclose(alone, out[1:], rtol=1e-5, atol=1e-5)


def test_full_lengths_equal_no_lengths():
    model = RNNClassifier(num_outputs=3, cell="lstm", hidden_size=4, bidirectional=True)
    x = x_of((2, 5, 3))
    variables = random_variables(model, x)
    np.testing.assert_allclose(
        apply_fn(model)(variables, x, jnp.array([5, 5])),
        run(model, variables, x, train=False),
        rtol=1e-6,
    )


def test_dropout_train_vs_eval():
    model = RNNClassifier(num_outputs=3, cell="gru", hidden_size=8, num_layers=2, dropout=0.5)
    x = x_of((4, 5, 2))
    variables = random_variables(model, x)
    train = train_fn(model)
    out1, out2 = (
        train(variables, x, jax.random.key(1))[0],
        train(variables, x, jax.random.key(2))[0],
    )
    assert float(jnp.abs(out1 - out2).max()) > 1e-3
    eval_out = run(model, variables, x, train=False)
    np.testing.assert_array_equal(
        eval_out, run(model.clone(dropout=0.0), variables, x, train=False)
    )


@pytest.mark.parametrize("cell", CELLS)
def test_bfloat16_forward(cell):
    model = RNNClassifier(num_outputs=3, cell=cell, hidden_size=4)
    x = x_of((2, 5, 2))
    variables = random_variables(model, x)
    out = apply_fn(model.clone(dtype=jnp.bfloat16))(variables, x, jnp.array([5, 2]))
    assert out.dtype == jnp.bfloat16
    ref = apply_fn(model)(variables, x, jnp.array([5, 2]))
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=0.05, rtol=0.05)


def test_default_initialisation_runs():
    model = RNNClassifier(num_outputs=3, cell="lstm", hidden_size=4)
    x = x_of((2, 5, 2))
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)
    recurrent = np.asarray(variables["params"]["rnn_0"]["cell"]["hf"]["kernel"])
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)  # orthogonal
    assert bool(jnp.isfinite(run(model, variables, x, train=False)).all())


def test_errors():
    with pytest.raises(ValueError, match="unknown RNN cell 'transformer'; valid cells are simple"):
        RNNClassifier(num_outputs=2, cell="transformer")
    model = RNNClassifier(num_outputs=2, cell="gru", hidden_size=3)
    with pytest.raises(ValueError, match=r"\(batch, time, features\).*got shape \(2, 3, 4, 5\)"):
        variable_shapes(model, jnp.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"got shape \(7,\)"):
        variable_shapes(model, jnp.ones(7))
    variables = random_variables(model, jnp.ones((1, 5, 2)))
    with pytest.raises(ValueError, match=r"expects inputs with 2 features per step .* \(1, 5, 3\)"):
        model.apply(variables, jnp.ones((1, 5, 3)), train=False)
    with pytest.raises(ValueError, match=r"lengths must have shape \(batch,\) = \(2,\)"):
        model.apply(variables, jnp.ones((2, 5, 2)), train=False, lengths=jnp.array([5]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, time\] = \[1, 5\]"):
        model.apply(variables, jnp.ones((2, 5, 2)), train=False, lengths=jnp.array([0, 5]))
    with pytest.raises(ValueError, match="lengths must be integers"):
        model.apply(variables, jnp.ones((2, 5, 2)), train=False, lengths=jnp.array([1.0, 5.0]))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        RNNClassifier(num_outputs=2, hidden_size=0)


def test_sequence_readout_is_the_papers_gru_and_reads_every_step():
    # Greydanus (2020): bidirectional GRU, 6 units, a linear head on all 40 outputs.
    model = get_model("mnist1d_gru")
    shapes = variable_shapes(model, jnp.ones((1, 40)))
    assert shapes_of(shapes["params"]["head"]) == {"kernel": (480, 10), "bias": (10,)}
    assert count_params(shapes) == 2 * (3 * (6 + 6) + 3 * 36 + 6) + 480 * 10 + 10 == 5110
    # The head sees the whole output sequence: it equals a hand-made readout.
    small = RNNClassifier(num_outputs=2, cell="simple", hidden_size=3, readout="sequence")
    x = x_of((2, 4, 1))
    variables = random_variables(small, x)
    p = variables["params"]
    h, outs = jnp.zeros((2, 3)), []
    for t in range(4):
        h = jnp.tanh(
            x[:, t] @ p["rnn_0"]["cell"]["i"]["kernel"]
            + p["rnn_0"]["cell"]["i"]["bias"]
            + h @ p["rnn_0"]["cell"]["h"]["kernel"]
        )
        outs.append(h)
    expected = jnp.stack(outs, 1).reshape(2, -1) @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(
        run(small, variables, x, train=False), expected, rtol=1e-5, atol=1e-6
    )
    # Padding beyond `lengths` is zeroed before the head, so its values don't matter.
    apply = apply_fn(small)
    lengths = jnp.array([4, 2])
    padded = x.at[1, 2:].set(1e3)
    np.testing.assert_allclose(apply(variables, padded, lengths), apply(variables, x, lengths))
    with pytest.raises(ValueError, match="readout must be one of"):
        RNNClassifier(num_outputs=2, readout="mean")
