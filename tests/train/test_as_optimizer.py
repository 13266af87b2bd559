"""as_optimizer: the forms every optimizer= argument accepts, and the errors for the rest."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import as_optimizer

PARAMS = {"w": jnp.array([1.0, -2.0])}
GRADS = {"w": jnp.array([0.5, 0.5])}


def update(tx):
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    return np.asarray(updates["w"])


def test_every_form_builds_the_same_sgd():
    want = update(optax.sgd(0.1))
    tx = optax.sgd(0.1)
    assert as_optimizer(tx) is tx
    for got in (
        as_optimizer(("sgd", 0.1)),
        as_optimizer("sgd", 0.1),
        as_optimizer(lambda lr: optax.sgd(lr), 0.1),
    ):
        np.testing.assert_allclose(update(got), want, rtol=1e-6)
    momentum = as_optimizer("momentum", 0.1, momentum=0.5)
    np.testing.assert_allclose(update(momentum), update(optax.sgd(0.1, momentum=0.5)))
    schedule = as_optimizer("adam", optax.constant_schedule(1e-2))
    np.testing.assert_allclose(update(schedule), update(optax.adam(1e-2)), rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("adma", 0.1), {}, ValueError, r"Unknown optimizer 'adma'; expected one of \['adagrad'"),
        (("adam",), {}, ValueError, r"'adam' needs `learning_rate`"),
        ((lambda lr: optax.sgd(lr),), {}, ValueError, "function needs `learning_rate`"),
        ((optax.sgd(0.1), 0.1), {}, ValueError, "pass `optimizer` as a name"),
        ((("sgd", 0.1), 0.1), {}, ValueError, "pass `optimizer` as a name"),
        ((optax.sgd(0.1),), {"momentum": 0.9}, ValueError, "apply to a named optimiser only"),
        ((3,), {}, TypeError, r"a name \(one of \['adagrad', .*\]\).*got the int 3"),
        ((lambda lr: lr, 0.1), {}, TypeError, "must return an optax.GradientTransformation"),
    ],
)
def test_bad_forms_name_the_valid_ones(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_optimizer(*args, **kwargs)


def test_learning_rate_arg_names_the_callers_argument():
    with pytest.raises(ValueError, match="needs `learning_rates`"):
        as_optimizer("sgd", learning_rate_arg="learning_rates")


def test_entry_points_accept_the_same_forms(train_source):
    batch = {"x": train_source.x[:8], "y": train_source.y[:8]}
    state = jdl.train.create_state(TinyMLP(), optax.sgd(0.1), batch)
    by_pair = jdl.analysis.layer_gradients(
        TinyMLP(), state.variables, batch, "cross_entropy", optimizer=("sgd", 0.1)
    )
    by_tx = jdl.analysis.layer_gradients(
        TinyMLP(), state.variables, batch, "cross_entropy", optimizer=optax.sgd(0.1)
    )
    assert str(by_pair) == str(by_tx)
    h = jdl.fit(TinyMLP(), train_source, optimizer=("sgd", 0.1), epochs=1, batch_size=64,
                loss="cross_entropy", verbose=0)  # fmt: skip
    assert h.steps == [4]
    run = jdl.analysis.scan_fit(TinyMLP(), batch, "cross_entropy", optimizer=("adam", 1e-2),
                                steps=3)  # fmt: skip
    assert run.losses.shape == (3,)
    with pytest.raises(ValueError, match="pass `optimizer` as a name"):
        jdl.analysis.lr_find(TinyMLP(), batch, "cross_entropy", optimizer=optax.sgd(0.1))
