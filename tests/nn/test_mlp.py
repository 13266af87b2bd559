"""Tests for jdl.nn.MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import MLP, count_params

from ._helpers import random_variables, run, shapes_of, train_fn, variable_shapes

KEY = jax.random.key(0)


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_default_init_output_shape_and_mnist1d_parameter_count():
    model = MLP(widths=(100, 100), num_outputs=10)
    variables = jax.jit(lambda x: model.init(KEY, x, train=False))(jnp.ones((1, 40)))
    # 40*100+100 + 100*100+100 + 100*10+10: the MNIST-1D paper's "MLP ~ 15k".
    assert count_params(variables) == 15_210
    out = run(model, variables, x_of((7, 40)), train=False)
    assert out.shape == (7, 10) and out.dtype == jnp.float32
    # Default init: LeCun normal kernels (variance 1 / fan_in), zero biases.
    kernel = np.asarray(variables["params"]["Dense_1"]["kernel"])
    assert abs(kernel.std() * np.sqrt(100) - 1) < 0.05
    assert not np.asarray(variables["params"]["Dense_1"]["bias"]).any()


def test_no_hidden_layers_is_logistic_regression():
    model = MLP(widths=(), num_outputs=10)
    variables = random_variables(model, jnp.ones((1, 40)))
    assert list(variables["params"]) == ["head"]
    assert count_params(variables) == 410  # the MNIST-1D paper's logistic regression
    x = x_of((3, 40))
    p = variables["params"]["head"]
    np.testing.assert_allclose(
        run(model, variables, x, train=False), x @ p["kernel"] + p["bias"], rtol=1e-5, atol=1e-6
    )


def test_inputs_are_flattened():
    model = MLP(widths=(16,), num_outputs=3)
    variables = random_variables(model, jnp.ones((1, 8, 8)))
    assert variables["params"]["Dense_0"]["kernel"].shape == (64, 16)
    x = x_of((5, 8, 8))
    np.testing.assert_allclose(
        run(model, variables, x, train=False),
        run(model, variables, x.reshape(5, 64), train=False),
        rtol=1e-6,
    )


def test_parameter_paths_are_stable_and_documented():
    model = MLP(widths=(32, 16, 16), num_outputs=4, batch_norm=True)
    shapes = variable_shapes(model, jnp.ones((1, 10)))
    assert shapes_of(shapes["params"]) == {
        "Dense_0": {"kernel": (10, 32), "bias": (32,)},
        "BatchNorm_0": {"scale": (32,), "bias": (32,)},
        "Dense_1": {"kernel": (32, 16), "bias": (16,)},
        "BatchNorm_1": {"scale": (16,), "bias": (16,)},
        "Dense_2": {"kernel": (16, 16), "bias": (16,)},
        "BatchNorm_2": {"scale": (16,), "bias": (16,)},
        "head": {"kernel": (16, 4), "bias": (4,)},
    }
    assert set(shapes["batch_stats"]) == {"BatchNorm_0", "BatchNorm_1", "BatchNorm_2"}
    assert MLP.head_name == "head"


def reference_forward(params, x, residual, act=jax.nn.relu):
    """Plain-JAX forward of a BN-free, dropout-free MLP."""
    h = x
    i = 0
    while f"Dense_{i}" in params:
        p = params[f"Dense_{i}"]
        y = act(h @ p["kernel"] + p["bias"])
        h = h + y if residual and i > 0 and h.shape[-1] == y.shape[-1] else y
        i += 1
    return h @ params["head"]["kernel"] + params["head"]["bias"]


@pytest.mark.parametrize("residual", [False, True])
def test_forward_matches_reference_with_and_without_skips(residual):
    # Input width 8 equals the first hidden width: the input projection still has no skip;
    # 8 -> 16 has none either; the two 16 -> 16 layers have one each.
    model = MLP(widths=(8, 16, 16, 16), num_outputs=3, residual=residual)
    variables = random_variables(model, jnp.ones((1, 8)))
    x = x_of((6, 8))
    np.testing.assert_allclose(
        run(model, variables, x, train=False),
        reference_forward(variables["params"], x, residual),
        rtol=1e-5,
        atol=1e-5,
    )


def reference_preactivation(params, x, act=jax.nn.sigmoid):
    """Plain-JAX forward of a BN-free pre-activation residual MLP: z + W act(z) + b."""
    z = x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]
    i = 1
    while f"Dense_{i}" in params:
        p = params[f"Dense_{i}"]
        y = act(z) @ p["kernel"] + p["bias"]
        z = z + y if z.shape[-1] == y.shape[-1] else y
        i += 1
    return act(z) @ params["head"]["kernel"] + params["head"]["bias"]


def test_preactivation_residual_matches_reference_and_keeps_parameters():
    model = MLP(widths=(8, 16, 16, 16), num_outputs=3, activation="sigmoid", residual="pre")
    x = x_of((6, 8))
    variables = random_variables(model, jnp.ones((1, 8)))
    np.testing.assert_allclose(
        run(model, variables, x, train=False),
        reference_preactivation(variables["params"], x),
        rtol=1e-5,
        atol=1e-5,
    )
    post = model.clone(residual=True)
    assert shapes_of(variable_shapes(model, x)) == shapes_of(variable_shapes(post, x))
    # With BatchNorm: the same names and shapes as the post-activation net, BatchNorm_i
    # normalising the stream after layer i.
    bn = model.clone(batch_norm=True)
    assert shapes_of(variable_shapes(bn, x)) == shapes_of(
        variable_shapes(post.clone(batch_norm=True), x)
    )


def test_residual_mode_is_checked():
    with pytest.raises(ValueError, match=r"residual must be False, True, 'post' or 'pre'"):
        MLP(widths=(4,), num_outputs=2, residual="both")


def test_residual_changes_outputs_but_not_parameters():
    plain = MLP(widths=(16,) * 4, num_outputs=3)
    res = plain.clone(residual=True)
    x = x_of((4, 16))
    shapes_plain, shapes_res = variable_shapes(plain, x), variable_shapes(res, x)
    assert shapes_of(shapes_plain) == shapes_of(shapes_res)
    variables = random_variables(plain, x)
    out_plain = run(plain, variables, x, train=False)
    out_res = run(res, variables, x, train=False)
    assert float(jnp.abs(out_plain - out_res).max()) > 1e-3


def test_hundred_layer_residual_net_builds():
    model = MLP(widths=(64,) * 100, num_outputs=10, residual=True)
    x = jnp.ones((2, 40))
    shapes = variable_shapes(model, x)
    assert count_params(shapes) == (40 * 64 + 64) + 99 * (64 * 64 + 64) + (64 * 10 + 10)
    assert "Dense_99" in shapes["params"] and "Dense_100" not in shapes["params"]
    out = jax.eval_shape(lambda v: model.apply(v, x, train=False), shapes)
    assert out.shape == (2, 10)


def test_dropout_is_random_in_training_and_off_in_evaluation():
    model = MLP(widths=(64, 64), num_outputs=5, dropout=0.5)
    x = x_of((4, 20))
    variables = random_variables(model, x)
    train = train_fn(model)

    def out(seed):
        return train(variables, x, jax.random.key(seed))[0]

    assert float(jnp.abs(out(1) - out(2)).max()) > 1e-3
    np.testing.assert_array_equal(out(1), out(1))
    eval_out = run(model, variables, x, train=False)
    no_dropout = run(model.clone(dropout=0.0), variables, x, train=False)
    np.testing.assert_array_equal(eval_out, no_dropout)
    assert float(jnp.abs(out(1) - eval_out).max()) > 1e-3


def test_batch_norm_updates_running_stats_in_training_and_uses_them_in_evaluation():
    model = MLP(widths=(8,), num_outputs=2, batch_norm=True)
    x = x_of((16, 5)) * 3 + 1
    variables = random_variables(model, x)
    train = train_fn(model)
    _, stats = train(variables, x, KEY)
    dense = variables["params"]["Dense_0"]
    pre = x @ dense["kernel"] + dense["bias"]
    # momentum 0.9 (PyTorch's 0.1): running = 0.9 * running + 0.1 * batch statistic.
    np.testing.assert_allclose(
        stats["BatchNorm_0"]["mean"], 0.1 * pre.mean(0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(stats["BatchNorm_0"]["var"], 0.9 + 0.1 * pre.var(0), rtol=1e-5)

    # Evaluation normalises each example with the running averages, independently of the
    # rest of the batch; training normalises with the batch's own statistics.
    new_vars = {"params": variables["params"], "batch_stats": stats}
    full = run(model, new_vars, x, train=False)
    alone = run(model, new_vars, x[:3], train=False)
    np.testing.assert_allclose(full[:3], alone, rtol=1e-5, atol=1e-6)
    train_full = train(new_vars, x, KEY)[0]
    train_alone = train(new_vars, x[:3], KEY)[0]
    assert float(jnp.abs(train_full[:3] - train_alone).max()) > 1e-3
    # Different running statistics give different evaluation outputs.
    assert float(jnp.abs(full - run(model, variables, x, train=False)).max()) > 1e-3


def test_bfloat16_forward():
    model = MLP(widths=(32, 32), num_outputs=4, batch_norm=True, dropout=0.1)
    x = x_of((3, 12))
    variables = random_variables(model, x)
    out32 = run(model, variables, x, train=False)
    bf16 = model.clone(dtype=jnp.bfloat16)
    out16 = run(bf16, variables, x, train=False)
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(out16.astype(jnp.float32), out32, atol=0.1, rtol=0.05)
    out16_train = train_fn(bf16)(variables, x, KEY)[0]
    assert out16_train.dtype == jnp.bfloat16 and bool(jnp.isfinite(out16_train).all())


def test_param_dtype():
    model = MLP(widths=(8,), num_outputs=2, param_dtype=jnp.bfloat16)
    shapes = variable_shapes(model, jnp.ones((1, 3)))
    assert {p.dtype for p in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype(jnp.bfloat16)}


def test_initialisers_and_output_activation_by_name():
    x = x_of((4, 6))
    zeros = MLP(widths=(8,), num_outputs=3, kernel_init="zeros", bias_init="ones")
    variables = jax.jit(lambda x: zeros.init(KEY, x, train=False))(x)
    assert not np.asarray(variables["params"]["Dense_0"]["kernel"]).any()
    np.testing.assert_array_equal(variables["params"]["head"]["bias"], np.ones(3))
    # All-zero kernels: every output is the head's bias.
    np.testing.assert_array_equal(run(zeros, variables, x, train=False), np.ones((4, 3)))

    probs = MLP(widths=(8,), num_outputs=3, output_activation="sigmoid", activation="tanh")
    v = random_variables(probs, x)
    logits = reference_forward(v["params"], x, residual=False, act=jnp.tanh)
    np.testing.assert_allclose(
        run(probs, v, x, train=False), jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6
    )


def test_one_dimensional_input_is_rejected():
    model = MLP(widths=(8,), num_outputs=2)
    with pytest.raises(ValueError, match=r"\(batch, features\).*got shape \(40,\)"):
        variable_shapes(model, jnp.ones(40))


def test_feature_mismatch_gives_a_clear_error():
    model = MLP(widths=(16,), num_outputs=2)
    variables = random_variables(model, jnp.ones((1, 64)))
    expected = (
        r"MLP expects inputs with 64 features per example \(shape \(batch, 64\)\), "
        r"got shape \(8, 40\)"
    )
    with pytest.raises(ValueError, match=expected):
        model.apply(variables, jnp.ones((8, 40)), train=False)
    with pytest.raises(ValueError, match=expected):
        run(model, variables, jnp.ones((8, 40)), train=False)
    with pytest.raises(ValueError, match=r"got shape \(8, 5, 8\) \(40 after flattening\)"):
        model.apply(variables, jnp.ones((8, 5, 8)), train=False)
    logistic = MLP(widths=(), num_outputs=2)
    with pytest.raises(ValueError, match="64 features"):
        logistic.apply(
            random_variables(logistic, jnp.ones((1, 64))), jnp.ones((8, 40)), train=False
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"widths": (8, 0)}, r"widths\[1\] = 0"),
        ({"widths": (8,), "num_outputs": 0}, "num_outputs"),
        ({"widths": (8,), "dropout": 1.0}, r"dropout rate in \[0, 1\)"),
        ({"widths": (8,), "activation": "rellu"}, "unknown activation"),
        ({"widths": (8,), "kernel_init": "glorious"}, "unknown initializer"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, match):
    kwargs = {"num_outputs": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_numpy_int_widths_and_integer_inputs():
    model = MLP(widths=(np.int64(8),), num_outputs=np.int32(2), dtype=None)
    x = jnp.ones((3, 5), jnp.int32)
    variables = random_variables(model, x)
    out = run(model, variables, x, train=False)
    assert out.shape == (3, 2) and out.dtype == jnp.float32


def test_inputs_without_features_are_refused():
    with pytest.raises(ValueError, match=r"at least one feature per example; got shape \(2, 0\)"):
        MLP(widths=(4,), num_outputs=2).init(jax.random.key(0), jnp.ones((2, 0)), train=False)
