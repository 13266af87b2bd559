import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl
from jdl.losses import kernel_mask
from jdl.train import learning_rate, make_schedule, optimizer


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_named_optimizer_descends_a_quadratic(name):
    tx = optimizer(name, 0.1)
    params = {"w": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    for _ in range(50):
        grads = {"w": 2 * params["w"]}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(jnp.sum(params["w"] ** 2)) < 13.0 * 0.5
    assert float(learning_rate(state)) == pytest.approx(0.1)


def test_schedules_values():
    cos = make_schedule("cosine", 1.0, total_steps=100)
    assert float(cos(0)) == pytest.approx(1.0)
    assert float(cos(50)) == pytest.approx(0.5, abs=1e-6)
    assert float(cos(100)) == pytest.approx(0.0, abs=1e-6)
    warm = make_schedule("warmup-cosine", 1.0, total_steps=110, warmup_steps=10)
    assert float(warm(5)) == pytest.approx(0.5)
    assert float(warm(10)) == pytest.approx(1.0)
    step = make_schedule("step", 1.0, boundaries=(10, 20), decay=0.1)
    assert [round(float(step(s)), 6) for s in (0, 10, 20)] == [1.0, 0.1, 0.01]
    assert float(make_schedule("constant", 0.3)(1000)) == pytest.approx(0.3)


def test_optimizer_with_schedule_reports_the_current_rate():
    tx = optimizer("sgd", 1.0, schedule="step", boundaries=(2,), decay=0.5)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update({"w": jnp.ones(2)}, state, params)
    assert float(learning_rate(state)) == pytest.approx(0.5)


def test_clip_limits_the_update():
    tx = optimizer("sgd", 1.0, clip=1.0)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([30.0, 40.0])}, tx.init(params), params)
    assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(1.0, rel=1e-5)


def test_weight_decay_skips_biases():
    tx = optimizer("sgd", 1.0, weight_decay=0.1)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zeros = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert float(updates["kernel"][0, 0]) == pytest.approx(-0.1)
    assert float(updates["bias"][0]) == 0.0


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="adagrad"):
        optimizer("adamm", 1e-3)
    with pytest.raises(ValueError, match="warmup_cosine"):
        make_schedule("linear", 1e-3)
    with pytest.raises(ValueError, match="total_steps"):
        optimizer("adam", 1e-3, schedule="cosine")
    with pytest.raises(ValueError, match="positive"):
        optimizer("adam", -1.0)
    with pytest.raises(ValueError, match="boundaries"):
        make_schedule("step", 1.0)
    assert learning_rate(optax.adam(1e-3).init({"w": jnp.ones(1)})) is None


def _updates(tx, grads, params, steps=3):
    state, out = tx.init(params), []
    for _ in range(steps):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return out


def test_weight_decay_is_decoupled_as_in_adamw():
    params = {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)}
    grads = {"kernel": jnp.full((2, 2), 0.5), "bias": jnp.full(2, 0.5)}
    mine = _updates(optimizer("adam", 0.1, weight_decay=0.5), grads, params)
    ref = _updates(optax.adamw(0.1, weight_decay=0.5, mask=kernel_mask), grads, params)
    for a, b in zip(mine, ref, strict=True):
        np.testing.assert_allclose(a["kernel"], b["kernel"], rtol=1e-6)
        np.testing.assert_allclose(a["bias"], b["bias"], rtol=1e-6)
    # Adam's first step is -lr * sign(g) = -0.1; the decoupled decay adds -lr * wd * w = -0.1.
    assert float(mine[0]["kernel"][0, 0]) == pytest.approx(-0.2, rel=1e-5)
    assert float(mine[0]["bias"][0]) == pytest.approx(-0.1, rel=1e-5)
    named = _updates(optimizer("adamw", 0.1, weight_decay=0.5), grads, params)
    np.testing.assert_allclose(named[-1]["kernel"], ref[-1]["kernel"], rtol=1e-6)


def test_decoupled_decay_with_momentum_and_a_schedule():
    params = {"kernel": jnp.full((2, 2), 1.0)}  # a matrix: decay applies to kernels only
    grads = {"kernel": jnp.full((2, 2), 0.2)}
    schedule = optax.linear_schedule(0.1, 0.05, 3)
    mine = _updates(optimizer("momentum", schedule, weight_decay=0.1), grads, params)
    w, v, out = 1.0, 0.0, []
    for step in range(3):  # by hand: v = 0.9 v + g; w -= lr_t * (v + wd * w)
        v = 0.9 * v + 0.2
        update = -float(schedule(step)) * (v + 0.1 * w)
        out.append(update)
        w += update
    np.testing.assert_allclose([float(u["kernel"][0, 0]) for u in mine], out, rtol=1e-5)


def test_coupled_weight_decay_is_l2_through_the_optimiser():
    params = {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)}
    grads = {"kernel": jnp.full((2, 2), 0.5), "bias": jnp.full(2, 0.5)}
    mine = _updates(optimizer("adam", 0.1, coupled_weight_decay=0.5), grads, params)
    ref = _updates(
        optax.chain(optax.add_decayed_weights(0.5, mask=kernel_mask), optax.adam(0.1)),
        grads,
        params,
    )
    for a, b in zip(mine, ref, strict=True):
        np.testing.assert_allclose(a["kernel"], b["kernel"], rtol=1e-6)
    # Through Adam, L2 only rescales the gradient: the first step is -lr * sign = -0.1.
    assert float(mine[0]["kernel"][0, 0]) == pytest.approx(-0.1, rel=1e-5)
    with pytest.raises(ValueError, match="weight_decay must be a non-negative number"):
        optimizer("adam", 0.1, weight_decay=-1.0)


@pytest.mark.parametrize(
    ("lr", "error", "match"),
    [
        (float("nan"), ValueError, r"finite positive number; got nan"),
        (float("inf"), ValueError, r"finite positive number; got inf"),
        (0.0, ValueError, r"finite positive number; got 0.0"),
        (-1, ValueError, r"finite positive number; got -1"),
        ("0.01", TypeError, r"must be a number \(e.g. 0.01\); got the str '0.01'"),
        (True, TypeError, r"got the bool True"),
    ],
)
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused(lr, error, match):
    with pytest.raises(error, match=match):
        jdl.train.optimizer("adam", lr)
    with pytest.raises(error, match=match):
        jdl.train.as_optimizer(("sgd", lr))
    with pytest.raises(error, match=match):
        jdl.train.make_schedule("cosine", lr, total_steps=10)


def test_a_missing_learning_rate_is_named():
    with pytest.raises(TypeError, match=r"got the NoneType None"):
        jdl.train.optimizer("adam", None)
    with pytest.raises(ValueError, match=r"needs `learning_rate`"):
        jdl.train.as_optimizer(("sgd", None))


def test_a_sweep_refuses_a_bad_learning_rate_before_training():
    x = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match=r"finite positive number; got nan"):
        jdl.train.sweep(jdl.nn.MLP(widths=(2,), num_outputs=2), (x, np.zeros(8, np.int32)),
                        batch_size=4, loss="ce", optimizer="sgd",
                        learning_rates=[0.1, float("nan")], steps=1, verbose=0)  # fmt: skip


def test_a_traced_learning_rate_is_accepted():
    tx = jax.jit(lambda lr: jdl.train.optimizer("sgd", lr).init({"w": jnp.ones(2)}))
    assert jax.tree_util.tree_leaves(tx(jnp.float32(0.1)))


def test_an_unknown_optimiser_keyword_is_refused_when_the_optimiser_is_made():
    # optax.inject_hyperparams builds the optimiser only at init, so the typo used to
    # surface later, from inside create_state
    with pytest.raises(TypeError, match=r"'adam' does not take .*\['momentum_x'\]"):
        optimizer("adam", 1e-3, momentum_x=0.9)
    optimizer("adam", 1e-3, b1=0.8)  # a real keyword still passes
