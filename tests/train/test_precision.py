"""Mixed precision (jdl.train.precision): float32 parameters, bfloat16/float16 compute,
float32 loss and BatchNorm statistics, dynamic loss scaling for float16."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl
from jdl.train import create_state, eval_step, train_step
from jdl.train.precision import (
    LossScaleState,
    check_precision,
    compute_model,
    dynamic_loss_scale,
    loss_scale,
)

X = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
Y = np.arange(16) % 3


def _batch():
    return {"x": jnp.asarray(X), "y": jnp.asarray(Y)}


def _dot_dtypes(fn, *args):
    """The operand dtypes of every dot/convolution in ``fn``'s jaxpr (nested ones too)."""
    text = str(jax.make_jaxpr(fn)(*args))
    return {
        dtype
        for line in text.splitlines()
        if "dot_general" in line or "conv_general_dilated" in line
        for dtype in ("bf16", "f16", "f32")
        if f":{dtype}[" in line.split("=")[0]
    }


def test_check_precision_names_the_choices():
    assert check_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match=r"'float32', 'bfloat16', 'float16'.*got 'bf16'"):
        check_precision("bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        state = create_state(jdl.nn.MLP(widths=(4,), num_outputs=3), optax.sgd(0.1), X)
        train_step(state, _batch(), loss_fn="cross_entropy", precision="half")


@pytest.mark.parametrize("precision, dtype", [("bfloat16", "bf16"), ("float16", "f16")])
def test_the_model_computes_in_the_lower_precision_and_keeps_float32_state(precision, dtype):
    state = create_state(jdl.nn.MLP(widths=(16,), num_outputs=3), optax.adam(1e-2), X)
    step = functools.partial(train_step, loss_fn="cross_entropy", precision=precision)
    assert _dot_dtypes(step, state, _batch()) == {dtype}  # forward and backward
    plain = functools.partial(train_step, loss_fn="cross_entropy")
    assert _dot_dtypes(plain, state, _batch()) == {"f32"}
    new, metrics = jax.jit(step)(state, _batch())
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new.params))
    floats = [p for p in jax.tree.leaves(new.opt_state) if jnp.issubdtype(p.dtype, jnp.floating)]
    assert floats and all(p.dtype == jnp.float32 for p in floats)  # (Adam's count: int32)
    assert metrics["loss"].dtype == jnp.float32
    _, reference = jax.jit(plain)(state, _batch())
    np.testing.assert_allclose(metrics["loss"], reference["loss"], rtol=2e-2)


def test_batchnorm_statistics_stay_float32():
    model = jdl.nn.CNN(features=(4,), num_outputs=3, batch_norm=True)
    images = np.random.default_rng(1).normal(size=(8, 8, 8, 1)).astype(np.float32)
    state = create_state(model, optax.sgd(0.1), images)
    batch = {"x": jnp.asarray(images), "y": jnp.arange(8) % 3}
    step = functools.partial(train_step, loss_fn="cross_entropy", precision="bfloat16")
    new, _ = jax.jit(step)(state, batch)
    leaves = jax.tree.leaves(new.batch_stats)
    assert leaves and all(s.dtype == jnp.float32 for s in leaves)
    before = jax.tree.leaves(state.batch_stats)
    assert not all(np.allclose(a, b) for a, b in zip(leaves, before, strict=True))  # updated
    _, sums = jax.jit(functools.partial(eval_step, loss_fn="cross_entropy",
                                        precision="bfloat16"))(new, batch)  # fmt: skip
    assert sums["loss"].dtype == jnp.float32 and np.isfinite(sums["loss"])


class NoDtype(nn.Module):
    """A user module without a ``dtype`` field: its parameters are cast instead."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(3, name="head")(x)


def test_a_module_without_a_dtype_field_gets_cast_parameters():
    model, cast = compute_model(NoDtype(), jnp.bfloat16)
    assert cast and model == NoDtype()
    clone, cast = compute_model(jdl.nn.MLP(widths=(4,), num_outputs=3), jnp.bfloat16)
    assert not cast and clone.dtype == jnp.bfloat16
    state = create_state(NoDtype(), optax.sgd(0.1), X)
    step = functools.partial(train_step, loss_fn="cross_entropy", precision="bfloat16")
    assert _dot_dtypes(step, state, _batch()) == {"bf16"}


def test_loss_scaling_skips_a_non_finite_step_and_adapts_the_scale():
    tx = dynamic_loss_scale(optax.adam(0.1), initial_scale=8.0, growth_interval=2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    assert loss_scale(state) == 8.0 and loss_scale(optax.adam(0.1).init(params)) is None
    bad = {"w": jnp.array([1.0, jnp.inf, 0.0])}
    updates, skipped = tx.update(bad, state, params)
    assert float(skipped.scale) == 4.0 and np.all(np.asarray(updates["w"]) == 0)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool(jnp.all(a == b)), skipped.inner, state.inner)
    )
    grads = {"w": jnp.full(3, 4.0)}  # = scale x the true gradient 1
    updates, one = tx.update(grads, skipped, params)
    reference, _ = optax.adam(0.1).update({"w": jnp.ones(3)}, state.inner, params)
    np.testing.assert_allclose(updates["w"], reference["w"], rtol=1e-6)
    assert float(one.scale) == 4.0 and int(one.good_steps) == 1
    _, two = tx.update(grads, one, params)
    assert float(two.scale) == 8.0 and int(two.good_steps) == 0  # grown after 2 finite steps
    at_one = dynamic_loss_scale(optax.sgd(1.0), initial_scale=1.0)
    _, floor = at_one.update(bad, at_one.init(params))
    assert float(floor.scale) == 1.0  # never below min_scale
    with pytest.raises(ValueError, match="factor > 1"):
        dynamic_loss_scale(optax.sgd(1.0), factor=1.0)


class Tiny(nn.Module):
    """A thousandth of a Dense layer: its float16 kernel gradients underflow to zero."""

    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return 1e-3 * nn.Dense(3, dtype=self.dtype, name="head")(x)


def test_float16_gradients_that_underflow_unscaled_survive_with_loss_scaling():
    # kernel gradient ~ 1e-3 (output scale) x 1e-5 (inputs) x 0.04 (dloss) x 16 ~ 6e-9:
    # below float16's smallest subnormal (6e-8), well inside float32's range.
    mse = functools.partial(train_step, loss_fn="mse", precision="float16")
    batch = {"x": jnp.asarray(X * 1e-5), "y": jnp.ones((16, 3))}
    sgd = optax.sgd(1e6)  # makes a 6e-9 gradient a visible change of the kernel
    plain = create_state(Tiny(), sgd, X)
    scaled = create_state(Tiny(), dynamic_loss_scale(sgd), X)
    new_plain, _ = jax.jit(mse)(plain, batch)
    new_scaled, _ = jax.jit(mse)(scaled, batch)
    new_ref, _ = jax.jit(functools.partial(train_step, loss_fn="mse"))(plain, batch)

    def change(new):
        return np.asarray(new.params["head"]["kernel"] - plain.params["head"]["kernel"])

    assert np.all(change(new_plain) == 0)  # every kernel gradient underflowed to 0
    expected = change(new_ref)
    assert np.all(expected != 0)
    np.testing.assert_allclose(change(new_scaled), expected, rtol=0.05)
    assert isinstance(new_scaled.opt_state, LossScaleState)


def _digits(split):
    a = jdl.data.as_arrays(jdl.data.load("digits", split))
    return a["x"].reshape(len(a["x"]), -1), a["y"]  # pixels in [0, 1]


def test_fit_in_bfloat16_and_float16_reaches_the_float32_accuracy_on_digits():
    (x, y), test = _digits("train"), _digits("test")
    accuracy, losses = {}, {}
    model = jdl.nn.MLP(widths=(64,), num_outputs=10)
    for precision in ("float32", "bfloat16", "float16"):
        history = jdl.fit(
            model, (x, y), batch_size=64, epochs=15,
            optimizer=("adam", 3e-3), loss="cross_entropy", verbose=0, precision=precision,
        )  # fmt: skip
        assert history.config["precision"] == precision
        result = jdl.evaluate(model, history.variables, test, metrics=["accuracy"])
        accuracy[precision] = result["accuracy"]
        losses[precision] = history.metrics["loss"][-1]
    print(accuracy, losses)
    assert accuracy["float32"] > 0.95
    assert len(set(losses.values())) == 3  # each trained in its own precision
    for precision in ("bfloat16", "float16"):
        assert abs(accuracy[precision] - accuracy["float32"]) <= 0.01, accuracy
    with pytest.raises(ValueError, match="precision must be one of"):
        jdl.fit(jdl.nn.MLP(widths=(8,), num_outputs=10), (x, y), batch_size=64, epochs=1,
                optimizer=("sgd", 0.1), loss="cross_entropy", precision="fp8")  # fmt: skip


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_a_sweep_in_lower_precision_equals_each_fit_in_it(precision):
    (x, y) = _digits("test")
    model = jdl.nn.MLP(widths=(32,), num_outputs=10)
    common = dict(batch_size=60, epochs=2, loss="cross_entropy", verbose=0, precision=precision)
    result = jdl.train.sweep(
        model, (x, y), optimizer="adam", learning_rates=[1e-3, 1e-2], **common
    )  # fmt: skip
    for lr, history in zip((1e-3, 1e-2), result.histories, strict=True):
        assert history.config["precision"] == precision
        alone = jdl.fit(model, (x, y), optimizer=("adam", lr), **common)
        np.testing.assert_allclose(history.metrics["loss"], alone.metrics["loss"], rtol=1e-2)
        scaled = isinstance(history.state.opt_state, LossScaleState)
        assert (
            scaled == (precision == "float16") == isinstance(alone.state.opt_state, LossScaleState)
        )
    with pytest.raises(ValueError, match="precision must be one of"):
        jdl.train.sweep(model, (x, y), optimizer="adam", learning_rates=[1e-3], batch_size=60,
                        epochs=1, loss="cross_entropy", precision="int8")  # fmt: skip


def test_a_resumed_run_keeps_its_precision(tmp_path):
    x, y = _digits("test")
    model = jdl.nn.MLP(widths=(8,), num_outputs=10)

    def run(epochs, precision):
        return jdl.fit(
            model, (x, y), batch_size=60, epochs=epochs, loss="cross_entropy",
            optimizer=("sgd", 0.1), verbose=0, precision=precision, resume=True,
            callbacks=[jdl.train.Checkpoint(tmp_path / "ck")],
        )  # fmt: skip

    with pytest.warns(UserWarning, match="does not exist"):
        run(1, "bfloat16")
    with pytest.raises(jdl.train.ResumeMismatchError, match="precision='bfloat16'"):
        run(2, "float32")
    assert run(2, "bfloat16").epochs == [1, 2]


def test_a_checkpoint_from_before_precision_was_recorded_resumes_in_float32():
    from jdl.train.resume import check_config

    saved = {"batch_size": 60, "seed": 0}  # written before "precision" was recorded
    check_config(saved, {**saved, "precision": "float32"}, "ck", 8)
    with pytest.raises(jdl.train.ResumeMismatchError, match="precision='float32'"):
        check_config(saved, {**saved, "precision": "float16"}, "ck", 8)
