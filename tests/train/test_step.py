import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TinyMLP, blobs

from jdl import losses
from jdl.train import create_state, eval_step, parallelize, train_step


def _batch(n=32, seed=0):
    src = blobs(n, seed=seed)
    return {"x": src.x, "y": src.y}


def test_create_state_is_deterministic_and_complete():
    a = create_state(TinyMLP(batch_norm=True), optax.sgd(0.1), _batch(), seed=3)
    b = create_state(TinyMLP(batch_norm=True), optax.sgd(0.1), _batch()["x"], seed=3)
    c = create_state(TinyMLP(batch_norm=True), optax.sgd(0.1), _batch(), seed=4)
    assert int(a.step) == 0
    assert set(a.variables) == {"params", "batch_stats"}
    leaves = lambda s: jax.tree_util.tree_leaves(s.params)  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))
    assert not np.array_equal(a.params["Dense_0"]["kernel"], c.params["Dense_0"]["kernel"])
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        create_state(TinyMLP(), "adam", _batch())


def test_train_step_descends_and_updates_batch_stats():
    batch = _batch()
    state = create_state(TinyMLP(batch_norm=True), optax.sgd(0.1), batch)
    step = jax.jit(functools.partial(train_step, loss_fn="cross_entropy", metrics=("accuracy",)))
    first_loss = None
    for _ in range(30):
        new, metrics = step(state, batch)
        first_loss = first_loss if first_loss is not None else float(metrics["loss"])
        state = new
    assert int(state.step) == 30
    assert float(metrics["loss"]) < 0.5 * first_loss
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0
    assert not np.allclose(state.batch_stats["BatchNorm_0"]["mean"], 0.0)


def test_dropout_uses_a_fresh_key_each_step_and_is_reproducible():
    batch = _batch()
    state = create_state(TinyMLP(dropout=0.5), optax.sgd(0.0), batch, seed=0)
    step = jax.jit(functools.partial(train_step, loss_fn="cross_entropy"))
    s1, m1 = step(state, batch)
    _, m2 = step(s1, batch)  # lr 0: only the dropout mask changes
    _, m1_again = step(state, batch)
    assert float(m1["loss"]) != float(m2["loss"])
    assert float(m1["loss"]) == float(m1_again["loss"])


def test_penalties_are_added_to_the_objective_not_the_reported_loss():
    batch = _batch()
    state = create_state(TinyMLP(), optax.sgd(0.1), batch)
    plain, m_plain = train_step(state, batch, loss_fn="cross_entropy")
    decayed, m_decayed = train_step(state, batch, loss_fn="cross_entropy", l2=1.0)
    assert float(m_plain["loss"]) == pytest.approx(float(m_decayed["loss"]))
    kernel = state.params["Dense_0"]["kernel"]
    diff = decayed.params["Dense_0"]["kernel"] - plain.params["Dense_0"]["kernel"]
    np.testing.assert_allclose(diff, -0.1 * 2 * kernel, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(decayed.params["Dense_0"]["bias"], plain.params["Dense_0"]["bias"])


def test_eval_step_sums_are_exact_with_a_mask():
    batch = _batch(10)
    state = create_state(TinyMLP(), optax.sgd(0.1), batch)
    mask = np.arange(10) < 7
    _, sums = eval_step(
        state, {**batch, "mask": mask}, loss_fn="cross_entropy", metrics=("accuracy",)
    )
    logits = state.model.apply(state.variables, batch["x"][:7], train=False)
    assert float(sums["count"]) == 7
    assert float(sums["loss"]) == pytest.approx(
        7 * float(losses.cross_entropy(logits, batch["y"][:7])), rel=1e-5
    )
    correct = np.sum(np.argmax(logits, -1) == batch["y"][:7])
    assert float(sums["accuracy"]) == pytest.approx(correct)


def test_non_scalar_loss_and_missing_keys_are_rejected():
    batch = _batch()
    state = create_state(TinyMLP(), optax.sgd(0.1), batch)
    with pytest.raises(ValueError, match="scalar.*shape \\(32,\\)"):
        train_step(state, batch, loss_fn=lambda out, y: jnp.sum(out, axis=1))
    with pytest.raises(KeyError, match='"y"'):
        train_step(state, {"x": batch["x"]}, loss_fn="cross_entropy")
    with pytest.raises(KeyError, match='"x"'):
        train_step(state, {"inputs": batch["x"]}, loss_fn="cross_entropy")


def test_parallelize_rejects_unknown_strategy_and_counts_one_compilation():
    with pytest.raises(ValueError, match="'jit', 'sharded', 'pmap'"):
        parallelize(train_step, "ddp")
    batch = _batch()
    state = create_state(TinyMLP(), optax.adam(1e-2), batch)
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), "jit")
    # parallelize keeps compiled steps across calls (an earlier test may have compiled this
    # one for other shapes): five steps add at most one program to it.
    before = step.compiled._cache_size()
    for seed in range(5):
        state, _ = step(state, _batch(seed=seed))
    assert step.compiled._cache_size() <= before + 1
    assert int(state.step) == 5


def test_parallelize_reads_whether_a_step_updates_the_state_from_the_step():
    batch = _batch()
    state = create_state(TinyMLP(), optax.adam(1e-2), batch)
    ev = parallelize(functools.partial(eval_step, loss_fn="cross_entropy"), "jit")
    assert not ev.updates_state
    same, sums = ev(state, batch)
    assert same is state and float(sums["count"]) == 32

    def my_eval(state, batch, *, axis_name=None):  # a user's own evaluation step
        return eval_step(state, batch, loss_fn="cross_entropy", axis_name=axis_name)

    assert parallelize(my_eval, "jit").updates_state
    my_eval.updates_state = False
    assert not parallelize(functools.partial(my_eval), "jit").updates_state
    assert parallelize(my_eval, "jit", updates_state=True).updates_state
