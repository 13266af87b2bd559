"""The models' input checks over random input ranks, shapes and dtypes: each input either
gives the documented ``(batch, num_outputs)`` output or a ValueError that names the model
and the shape it got; never an error from inside JAX or Flax, never an output of another
shape.

Shapes only matter here, so the models run under ``jax.eval_shape``: traced, not compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jdl.nn import CNN, MLP, VGG, BasicBlock, CifarResNet, ResNet, RNNClassifier

NUM_OUTPUTS = 3
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16, jnp.int32, jnp.uint8, jnp.bool_]
KEY = jax.random.key(0)


def _spatial_ok(shape, rank: int, minimum: int = 1) -> bool:
    """Channels-last input of ``rank`` spatial dims, the channel axis optional."""
    if len(shape) not in (rank + 1, rank + 2):
        return False
    spatial = shape[1 : rank + 1]
    channels = shape[rank + 1] if len(shape) == rank + 2 else 1
    return all(d >= minimum for d in spatial) and channels >= 1


#: ``name -> (model, accepts(shape))``: which input shapes each model documents.
MODELS: dict[str, tuple[object, Callable[[tuple[int, ...]], bool]]] = {
    "MLP": (
        MLP(widths=(4,), num_outputs=NUM_OUTPUTS),
        lambda s: len(s) >= 2 and math.prod(s[1:]) > 0,
    ),
    "CNN(ndim=1)": (
        CNN(features=(2,), num_outputs=NUM_OUTPUTS, ndim=1, pool="max"),
        lambda s: _spatial_ok(s, 1, minimum=2),  # the 2-wide max-pool needs 2 steps
    ),
    "CNN(ndim=2)": (
        CNN(features=(2,), num_outputs=NUM_OUTPUTS, ndim=2, global_pool=True),
        lambda s: _spatial_ok(s, 2),
    ),
    "RNNClassifier": (
        RNNClassifier(NUM_OUTPUTS, cell="gru", hidden_size=2),
        lambda s: len(s) in (2, 3) and s[1] >= 1 and (len(s) == 2 or s[2] >= 1),
    ),
    "RNNClassifier(sequence)": (
        RNNClassifier(NUM_OUTPUTS, cell="simple", hidden_size=2, readout="sequence"),
        lambda s: len(s) in (2, 3) and s[1] >= 1 and (len(s) == 2 or s[2] >= 1),
    ),
    "ResNet": (
        ResNet((1,), BasicBlock, num_outputs=NUM_OUTPUTS, width=2),
        lambda s: _spatial_ok(s, 2),
    ),
    "CifarResNet": (
        CifarResNet(depth=8, num_outputs=NUM_OUTPUTS, width=2),
        lambda s: _spatial_ok(s, 2),
    ),
    "VGG": (
        VGG((2, "M", 2), num_outputs=NUM_OUTPUTS, classifier=(), dropout=0.0),
        lambda s: _spatial_ok(s, 2, minimum=2),  # the 2x2 max-pool
    ),
}


def _init(model, x):
    return jax.eval_shape(lambda x: model.init(KEY, x, train=False), x)


def _apply(model, variables, x):
    return jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)


def _model_name(name: str) -> str:
    return name.split("(")[0]


#: The input ranks each model accepts (MLP: any rank >= 2; three are drawn).
RANKS = {"MLP": (2, 3, 4), "CNN(ndim=1)": (2, 3), "RNNClassifier": (2, 3)}


def input_shapes(name: str) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of the ranks ``name`` accepts and one less and one more, sides in 0..3 (the
    valid side 2 first, so that a failure shrinks towards the smallest wrong dimension)."""
    valid = RANKS.get(name.replace("(sequence)", ""), (3, 4))
    ranks = [*valid, valid[0] - 1, valid[-1] + 1, 0]
    sides = st.sampled_from([2, 1, 0, 3])
    return st.sampled_from(ranks).flatmap(lambda r: st.tuples(*[sides] * r))


@pytest.mark.parametrize("name", sorted(MODELS))
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_an_input_gives_the_documented_output_or_a_value_error_naming_its_shape(name, data, dtype):
    model, accepts = MODELS[name]
    shape = data.draw(input_shapes(name), label="shape")
    x = jax.ShapeDtypeStruct(shape, dtype)
    if accepts(shape):
        out = _apply(model, _init(model, x), x)
        assert out.shape == (shape[0], NUM_OUTPUTS) and out.dtype == jnp.float32
    else:
        with pytest.raises(ValueError) as err:
            _init(model, x)
        message = str(err.value)
        assert _model_name(name) in message and str(tuple(shape)) in message, message


def _same_parameters(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether inputs of shapes ``a`` and ``b`` (of one rank) fit the same parameters."""
    if name == "MLP":
        return math.prod(a[1:]) == math.prod(b[1:])
    if a[-1] != b[-1]:  # the channels (features per step) fix the first layer
        return False
    if name == "CNN(ndim=1)":  # flattened after one 2-wide pool
        return a[1] // 2 == b[1] // 2
    if name == "VGG":  # flattened after one 2x2 pool
        return (a[1] // 2) * (a[2] // 2) == (b[1] // 2) * (b[2] // 2)
    if name == "RNNClassifier(sequence)":  # flattened over time
        return a[1] == b[1]
    return True  # global pooling (CNN(ndim=2), the ResNets) or the last step (RNN)


@pytest.mark.parametrize("name", sorted(MODELS))
@given(data=st.data())
def test_an_initialised_model_runs_on_fitting_inputs_and_rejects_the_others(name, data):
    model, accepts = MODELS[name]
    rank = {"MLP": 2, "RNNClassifier": 3, "CNN(ndim=1)": 3}.get(name.replace("(sequence)", ""), 4)
    shapes = hnp.array_shapes(min_dims=rank, max_dims=rank, min_side=2, max_side=4)
    shape, other = data.draw(shapes), data.draw(shapes)
    assert accepts(shape) and accepts(other)
    variables = _init(model, jax.ShapeDtypeStruct(shape, jnp.float32))
    x = jax.ShapeDtypeStruct(other, jnp.float32)
    if _same_parameters(name, shape, other):
        assert _apply(model, variables, x).shape == (other[0], NUM_OUTPUTS)
    else:
        with pytest.raises(ValueError, match=rf"^{_model_name(name)}\b.*expects") as err:
            _apply(model, variables, x)
        assert str(tuple(other)) in str(err.value), str(err.value)


@given(st.sampled_from([1, 2, 3]), st.integers(1, 4), st.data())
def test_rnn_lengths_outside_one_to_time_or_of_the_wrong_shape_are_value_errors(batch, time, data):
    model, _ = MODELS["RNNClassifier"]
    x = np.zeros((batch, time, 2), np.float32)
    variables = _init(model, jax.ShapeDtypeStruct(x.shape, x.dtype))
    lengths = data.draw(hnp.arrays(np.int32, (batch,), elements=st.integers(-1, time + 1)))
    ok = bool(((lengths >= 1) & (lengths <= time)).all())
    if ok:
        out = jax.eval_shape(
            lambda v, x: model.apply(v, x, train=False, lengths=lengths), variables, x
        )
        assert out.shape == (batch, NUM_OUTPUTS)
    else:
        with pytest.raises(ValueError, match=r"lengths must lie in \[1, time\]"):
            model.apply(
                jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables),
                x,
                train=False,
                lengths=lengths,
            )
    bad_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))
    if bad_shape != (batch,):
        with pytest.raises(ValueError, match=r"lengths must have shape \(batch,\)"):
            jax.eval_shape(
                lambda v, x: model.apply(v, x, train=False, lengths=jnp.ones(bad_shape, jnp.int32)),
                variables,
                x,
            )
    with pytest.raises(ValueError, match="lengths must be integers"):
        jax.eval_shape(
            lambda v, x: model.apply(v, x, train=False, lengths=jnp.ones(batch)), variables, x
        )
