"""Tests for jdl.nn.CNN (1-D and 2-D conv stacks)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import CNN, count_params, get_model

from ._helpers import capture, random_variables, run, shapes_of, train_fn, variable_shapes

KEY = jax.random.key(0)


def x_of(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def mnist1d_cnn(**kwargs):
    return get_model("mnist1d_cnn", **kwargs)


def test_mnist1d_paper_cnn_has_5210_parameters():
    shapes = variable_shapes(mnist1d_cnn(), jnp.ones((1, 40)))
    per_layer = {name: count_params(p) for name, p in shapes["params"].items()}
    assert per_layer == {"Conv_0": 150, "Conv_1": 1900, "Conv_2": 1900, "head": 1260}
    assert count_params(shapes) == 5_210
    # Lengths follow PyTorch's floor((n + 2p - k) / s) + 1: 40 -> 19 -> 10 -> 5, so 5 * 25 = 125
    # features reach the head.
    assert shapes["params"]["head"]["kernel"].shape == (125, 10)


def test_mnist1d_cnn_forward_and_channel_axis():
    model = mnist1d_cnn()
    variables = random_variables(model, jnp.ones((1, 40)))
    x = x_of((6, 40))
    out = run(model, variables, x, train=False)
    assert out.shape == (6, 10)
    np.testing.assert_allclose(run(model, variables, x[..., None], train=False), out, rtol=1e-6)


def test_int_padding_is_symmetric_like_pytorch():
    model = CNN(features=(1,), kernel_size=3, strides=2, padding=1, ndim=1, num_outputs=1)
    x = x_of((1, 8))
    variables = random_variables(model, x)
    conv_out = capture(model, variables, x, "Conv_0")[0][0, :, 0]
    w = np.asarray(variables["params"]["Conv_0"]["kernel"])[:, 0, 0]
    b = float(variables["params"]["Conv_0"]["bias"][0])
    padded = np.pad(np.asarray(x)[0], 1)  # one zero on each side
    expected = [padded[2 * t : 2 * t + 3] @ w + b for t in range(4)]
    np.testing.assert_allclose(conv_out, expected, rtol=1e-5, atol=1e-6)


def test_2d_shapes_pooling_and_parameter_names():
    model = CNN(features=(4, 8), num_outputs=3, pool="max", dense=(16,))
    shapes = variable_shapes(model, jnp.ones((1, 12, 12)))
    # SAME convs keep 12x12; two 2x2 pools: 12 -> 6 -> 3; flatten 3*3*8 = 72.
    assert shapes_of(shapes["params"]) == {
        "Conv_0": {"kernel": (3, 3, 1, 4), "bias": (4,)},
        "Conv_1": {"kernel": (3, 3, 4, 8), "bias": (8,)},
        "Dense_0": {"kernel": (72, 16), "bias": (16,)},
        "head": {"kernel": (16, 3), "bias": (3,)},
    }
    variables = random_variables(model, jnp.ones((1, 12, 12)))
    x = x_of((2, 12, 12))
    out = run(model, variables, x, train=False)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(run(model, variables, x[..., None], train=False), out, rtol=1e-6)


def test_max_and_avg_pool_values():
    x = x_of((2, 4, 4, 2))
    for pool, reduce in (("max", np.max), ("avg", np.mean)):
        model = CNN(features=(2,), kernel_size=1, num_outputs=1, pool=pool, activation="identity")
        variables = random_variables(model, x)
        conv, _ = capture(model, variables, x, "Conv_0")
        expected = reduce(conv.reshape(2, 2, 2, 2, 2, 2), axis=(2, 4))
        head = variables["params"]["head"]
        logits = expected.reshape(2, -1) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
        np.testing.assert_allclose(run(model, variables, x, train=False), logits, rtol=1e-5)


def test_per_layer_settings():
    model = CNN(
        features=(4, 4, 4),
        ndim=2,
        kernel_size=(5, (3, 1), 3),
        strides=(1, (2, 1), 2),
        padding=("VALID", (1, 0), "SAME"),
        num_outputs=2,
    )
    shapes = variable_shapes(model, jnp.ones((1, 20, 20, 3)))
    assert shapes["params"]["Conv_1"]["kernel"].shape == (3, 1, 4, 4)
    # 20 -VALID 5-> 16 -> (k3 s2 p1 / k1 s1 p0) -> (8, 16) -> SAME s2 -> (4, 8); 4*8*4 = 128.
    assert shapes["params"]["head"]["kernel"].shape == (128, 2)


def test_global_pool_makes_the_model_size_independent():
    model = CNN(features=(4, 8), num_outputs=3, global_pool=True)
    variables = random_variables(model, jnp.ones((1, 10, 10, 2)))
    assert variables["params"]["head"]["kernel"].shape == (8, 3)
    assert run(model, variables, x_of((2, 14, 9, 2)), train=False).shape == (2, 3)

    flat = model.clone(global_pool=False)
    flat_vars = random_variables(flat, jnp.ones((1, 10, 10, 2)))
    with pytest.raises(ValueError, match=r"CNN head expects 800 features .* got 1008"):
        flat.apply(flat_vars, x_of((2, 14, 9, 2)), train=False)


def test_dropout_and_batch_norm_train_vs_eval():
    model = CNN(features=(4,), ndim=1, num_outputs=3, dense=(8,), dropout=0.5, batch_norm=True)
    x = x_of((8, 10)) * 2 + 1
    variables = random_variables(model, x)
    assert set(variables["batch_stats"]) == {"BatchNorm_0"}
    train = train_fn(model)
    out1, stats = train(variables, x, jax.random.key(1))
    out2, _ = train(variables, x, jax.random.key(2))
    assert float(jnp.abs(out1 - out2).max()) > 1e-3
    conv = variables["params"]["Conv_0"]
    xp = np.pad(np.asarray(x), ((0, 0), (1, 1)))  # SAME, kernel 3
    pre = np.stack([xp[:, t : t + 3] for t in range(10)], 1) @ np.asarray(conv["kernel"])[:, 0]
    pre = pre + np.asarray(conv["bias"])
    np.testing.assert_allclose(
        stats["BatchNorm_0"]["mean"], 0.1 * pre.mean((0, 1)), rtol=1e-4, atol=1e-6
    )
    eval1 = run(model, variables, x, train=False)
    np.testing.assert_array_equal(eval1, run(model, variables, x, train=False))
    alone = run(model, variables, x[:2], train=False)
    np.testing.assert_allclose(eval1[:2], alone, rtol=1e-5, atol=1e-6)


def test_bfloat16_forward():
    model = CNN(features=(4, 8), num_outputs=3, pool="avg", batch_norm=True, dtype=jnp.bfloat16)
    x = x_of((2, 8, 8, 3))
    variables = random_variables(model, x)
    out = run(model, variables, x, train=False)
    assert out.dtype == jnp.bfloat16
    ref = run(model.clone(dtype=jnp.float32), variables, x, train=False)
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=0.1, rtol=0.05)


def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"CNN\(ndim=2\) expects inputs of shape \(batch, height"):
        variable_shapes(CNN(features=(4,), num_outputs=2), jnp.ones((2, 3, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"\(batch, length, channels\), got shape \(2, 8, 8, 1\)"):
        variable_shapes(CNN(features=(4,), ndim=1, num_outputs=2), jnp.ones((2, 8, 8, 1)))


def test_channel_mismatch_is_reported():
    model = CNN(features=(4,), num_outputs=2, global_pool=True)
    variables = random_variables(model, jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"CNN expects inputs with 3 channels .* \(2, 8, 8\)"):
        model.apply(variables, jnp.ones((2, 8, 8)), train=False)


def test_too_small_input_is_reported():
    model = CNN(features=(4, 4), kernel_size=5, padding="VALID", num_outputs=2)
    with pytest.raises(ValueError, match="too small"):
        variable_shapes(model, jnp.ones((1, 6, 6)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ndim": 3}, "ndim must be 1 or 2"),
        ({"pool": "min"}, "pool must be None, 'max' or 'avg'"),
        ({"padding": "FULL"}, "padding must be one of SAME, VALID"),
        ({"kernel_size": (3, 3, 3)}, r"one value per conv layer \(2\), got 3"),
        ({"strides": 0}, "strides must be an int >= 1"),
        ({"kernel_size": ((3, 3, 3), 3)}, "tuple of 2 such ints"),
        ({"features": (4, -1)}, r"features\[1\]"),
        ({"dropout": -0.1}, "dropout rate"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CNN(**{"features": (4, 4), "num_outputs": 2, **kwargs})
