import jax.numpy as jnp
import optax
import pytest

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
