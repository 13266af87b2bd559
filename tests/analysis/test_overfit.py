"""overfit_check: pass on 3 examples, fail with a useful hint, initial loss vs ln C."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jdl import analysis
from jdl.nn import MLP


def _few(digits, n=3):
    return {"x": digits["x"][:n], "y": digits["y"][:n]}


def test_correct_model_memorises_three_examples(digits):
    result = analysis.overfit_check(MLP(widths=(32,), num_outputs=10), _few(digits), steps=200)
    assert result.passed and bool(result)
    assert result.final_loss < 0.01 * result.initial_loss
    assert result.accuracy == 1.0
    assert result.expected_initial_loss == math.log(10)
    assert result.initial_loss_ok
    assert result.hints == []
    assert "PASSED" in str(result)


def test_sigmoid_output_fails_with_output_layer_hint(digits):
    broken = MLP(widths=(32,), num_outputs=10, output_activation="sigmoid")
    result = analysis.overfit_check(broken, _few(digits), "cross_entropy", steps=200)
    assert not result.passed
    assert result.final_loss > 1.0  # softmax over (0, 1) outputs cannot get confident
    assert any("output layer / loss mismatch" in h and "[0, 1]" in h for h in result.hints)
    assert "FAILED" in str(result)


def test_sigmoid_with_mse_on_ten_classes_fails_with_hint(digits):
    few = _few(digits)
    one_hot = np.eye(10, dtype=np.float32)[few["y"]]
    broken = MLP(widths=(32,), num_outputs=10, output_activation="sigmoid", kernel_init="he")
    result = analysis.overfit_check(
        broken, {"x": few["x"], "y": one_hot}, "mse", steps=100, rel_tolerance=1e-3
    )
    assert not result.passed
    assert any("targets look like classes" in h and "cross_entropy" in h for h in result.hints)


def test_head_far_from_ln_c_is_flagged(digits):
    loud = MLP(widths=(32,), num_outputs=10, kernel_init=3.0)
    result = analysis.overfit_check(loud, _few(digits), steps=20)
    assert result.initial_loss > 2 * math.log(10)
    assert result.initial_loss_ok is False
    assert any("ln C" in h for h in result.hints)


def test_learning_rate_too_low_hint(digits):
    import optax

    result = analysis.overfit_check(
        MLP(widths=(32,), num_outputs=10), _few(digits), optimizer=optax.sgd(1e-7), steps=20
    )
    assert not result.passed
    assert any("learning rate too low" in h for h in result.hints)
    assert jnp.isfinite(result.final_loss)
