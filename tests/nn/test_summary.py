"""jdl.nn.summary: layers, output shapes, parameter counts and XLA's FLOP estimates."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import nn


def test_mlp_rows_shapes_params_and_flops():
    model = nn.MLP(widths=(100,), num_outputs=10)
    s = nn.summary(model, np.zeros((3, 40), np.float32))
    assert [(r.path, r.kind, r.output_shape) for r in s.rows] == [
        ("Dense_0", "Dense", (3, 100)),
        ("head", "Dense", (3, 10)),
        ("", "MLP", (3, 10)),
    ]
    assert [r.params for r in s.rows] == [40 * 100 + 100, 100 * 10 + 10, 5110]
    variables = model.init(jax.random.key(0), jnp.ones((1, 40)), train=False)
    assert s.params == nn.count_params(variables) == 5110
    # XLA counts a multiply-add as 2 FLOPs; biases and the ReLU add a little on top.
    macs = 3 * (40 * 100 + 100 * 10)
    assert 2 * macs <= s.flops <= 2.1 * macs
    assert s.rows[0].flops + s.rows[1].flops == pytest.approx(s.flops, rel=0.05)


def test_conv_flops_follow_the_output_size():
    s = nn.summary(nn.get_model("mnist1d_cnn"), (2, 40))
    conv = s.rows[0]
    assert conv.kind == "Conv"
    positions, channels = conv.output_shape[1], conv.output_shape[2]
    kernel_weights = conv.params - channels  # kernel entries, the bias left out
    assert conv.flops >= 2 * 2 * positions * kernel_weights


def test_batchnorm_statistics_are_state_not_parameters():
    model = nn.get_model("cifar_resnet20", num_outputs=10)
    s = nn.summary(model, (1, 32, 32, 3))
    variables = jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False), jnp.ones((1, 32, 32, 3))
    )
    assert s.params == nn.count_params(variables["params"])
    assert s.state == nn.count_params(variables["batch_stats"]) > 0
    assert {r.kind for r in s.rows} >= {"Conv", "BatchNorm", "BasicBlock", "Dense"}


def test_depth_controls_nesting():
    model = nn.get_model("cifar_resnet20", num_outputs=10)
    only_model = nn.summary(model, (1, 32, 32, 3), depth=0, flops=False)
    assert [r.path for r in only_model.rows] == [""]
    every = nn.summary(model, (1, 32, 32, 3), depth=None, flops=False)
    assert "layer1_0/conv1" in [r.path for r in every.rows]
    assert all(r.flops is None for r in every.rows)


def test_loops_get_no_flop_estimate():
    # XLA's cost analysis counts a while loop's body once: a recurrent layer's count would be
    # wrong by the sequence length, so it is reported as unknown, and so is the model's.
    s = nn.summary(nn.get_model("mnist1d_gru"), (2, 40))
    rnn, head, model = s.rows
    assert rnn.flops is None and model.flops is None
    assert head.flops is not None


def test_text_table_and_json():
    s = nn.summary(nn.MLP(widths=(8,), num_outputs=3), (2, 5))
    text = str(s)
    assert "MLP on inputs (2, 5)" in text
    assert "Dense_0" in text and "(model)" in text
    assert f"trainable parameters: {s.params:,}" in text
    data = json.loads(json.dumps(s.to_dict()))
    assert data["rows"][-1]["output_shape"] == [2, 3]
    assert data["params"] == s.params


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"model": "mlp", "sample": (1, 4)}, TypeError, "flax.linen.Module"),
        ({"sample": "x"}, TypeError, "shape tuple"),
        ({"sample": (1, 0)}, TypeError, "positive ints"),
        ({"sample": (1, 4), "depth": -1}, ValueError, "depth"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, words):
    kwargs = {"model": nn.MLP(widths=(4,), num_outputs=2), **kwargs}
    with pytest.raises(error, match=words):
        nn.summary(kwargs.pop("model"), kwargs.pop("sample"), **kwargs)
