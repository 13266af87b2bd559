"""jdl's own format: round trip, model config, atomic writes, refusal of foreign code."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from jdl import nn, pretrained

from .conftest import random_variables


@pytest.fixture
def cnn_and_variables():
    model = nn.CNN(features=(4, 4), num_outputs=3, ndim=1, batch_norm=True, activation=jax.nn.gelu)
    return model, random_variables(model, (1, 12))


def test_round_trip_rebuilds_the_model_and_its_outputs(tmp_path, cnn_and_variables):
    model, variables = cnn_and_variables
    path = pretrained.save(
        tmp_path / "sub" / "m.safetensors",
        model,
        variables,
        input_shape=(1, 12),
        info={"classes": ["a", "b", "c"]},
    )
    p = pretrained.load(path)
    assert p.model == model and p.report.complete and p.info == {"classes": ["a", "b", "c"]}
    jax.tree_util.tree_map(np.testing.assert_array_equal, p.variables, variables)
    x = np.random.default_rng(0).normal(size=(4, 12)).astype(np.float32)
    np.testing.assert_array_equal(
        model.apply(variables, x, train=False), p.model.apply(p.variables, x, train=False)
    )
    assert pretrained.detect_format(path) == "jdl"


def test_saved_resnet_keeps_its_block_class(tmp_path):
    model = nn.ResNet(
        stage_sizes=(1,), block_cls=nn.Bottleneck, num_outputs=2, width=4, dtype=jnp.bfloat16
    )
    variables = random_variables(model, (1, 16, 16, 3))
    path = pretrained.save(tmp_path / "r.safetensors", model, variables, input_shape=(1, 16, 16, 3))
    assert pretrained.load_jdl(path).model == model


def test_loading_into_another_model_lists_the_mismatches(tmp_path, cnn_and_variables):
    model, variables = cnn_and_variables
    path = pretrained.save(tmp_path / "m.safetensors", model, variables, input_shape=(1, 12))
    other = nn.CNN(features=(4, 8), num_outputs=3, ndim=1, batch_norm=False)
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.load(path, model=other)
    assert "batch_stats/BatchNorm_0/mean" in info.value.unexpected
    assert ("params/Conv_1/kernel", (3, 4, 8), (3, 4, 4)) in info.value.mismatched


def test_a_failed_write_leaves_nothing_behind(tmp_path, cnn_and_variables, monkeypatch):
    model, variables = cnn_and_variables
    target = tmp_path / "m.safetensors"
    pretrained.save(target, model, variables, input_shape=(1, 12))
    before = target.read_bytes()

    def crash(arrays, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.numpy.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        pretrained.save(target, model, jax.tree_util.tree_map(lambda a: a * 0, variables))
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file


def test_truncated_jdl_file_gives_a_clear_error(tmp_path, cnn_and_variables):
    model, variables = cnn_and_variables
    path = pretrained.save(tmp_path / "m.safetensors", model, variables)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(pretrained.WeightFileError, match="truncated"):
        pretrained.load_jdl(path)


def _file_with_config(path, config):
    meta = {"format": "jdl", "format_version": "1", "model": json.dumps(config), "info": "{}"}
    save_file({"params/head/kernel": np.zeros((2, 2), np.float32)}, str(path), metadata=meta)


@pytest.mark.parametrize(
    "cls", ["os:system", "subprocess:Popen", "builtins:eval", "jdl.nn.init:get_initializer"]
)
def test_a_config_cannot_name_arbitrary_callables(tmp_path, cls):
    path = tmp_path / "evil.safetensors"
    _file_with_config(path, {"class": cls, "fields": {"command": "touch pwned"}})
    with pytest.raises(pretrained.WeightFileError):
        pretrained.load_jdl(path)
    assert not (tmp_path / "pwned").exists()


def test_field_refs_outside_the_allow_list_are_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    _file_with_config(
        path,
        {
            "class": "jdl.nn.mlp:MLP",
            "fields": {
                "widths": {"__tuple__": [2]},
                "num_outputs": 2,
                "activation": {"__ref__": "os:system"},
            },
        },
    )
    with pytest.raises(pretrained.WeightFileError, match="outside the modules"):
        pretrained.load_jdl(path)


def test_plain_safetensors_is_not_taken_for_jdl(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"fc.weight": np.zeros((2, 2), np.float32)}, str(path))
    assert pretrained.detect_format(path) == "torchvision"
    with pytest.raises(pretrained.WeightFileError, match="not in jdl's format"):
        pretrained.load_jdl(path)


def test_saving_needs_variables(tmp_path):
    with pytest.raises(TypeError, match="variables"):
        pretrained.save(tmp_path / "x.safetensors", None, {"kernel": np.zeros(2)})
    assert not list(tmp_path.iterdir())


def test_weights_holding_nan_are_loaded_with_a_warning_naming_them(tmp_path, cnn_and_variables):
    model, variables = cnn_and_variables
    bad = jax.tree_util.tree_map(np.array, variables)
    bad["params"]["Conv_1"]["kernel"][0, 0, 0] = np.nan
    bad["batch_stats"]["BatchNorm_0"]["var"][1] = np.inf
    path = pretrained.save(tmp_path / "m.safetensors", model, bad, input_shape=(1, 12))
    with pytest.warns(RuntimeWarning, match=r"NaN or infinite values in 2 weight\(s\)") as rec:
        pretrained.load(path)
    message = str(rec[0].message)
    assert "params/Conv_1/kernel (1 of 48)" in message, message
    assert "batch_stats/BatchNorm_0/var (1 of 4)" in message, message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pretrained.load(pretrained.save(tmp_path / "ok.safetensors", model, variables,
                                        input_shape=(1, 12)))  # fmt: skip


@pytest.mark.parametrize(
    ("input_shape", "message"),
    [((4,), r"input_shape=\(4,\) does not fit .*batch axis"), ((1, 5), r"\(5, 8\) from input")],
)
def test_save_refuses_an_input_shape_its_own_load_would_refuse(tmp_path, input_shape, message):
    model = nn.MLP(widths=(8,), num_outputs=3)
    variables = model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
    with pytest.raises(ValueError, match=message):
        pretrained.save(tmp_path / "m.safetensors", model, variables, input_shape=input_shape)
    assert not (tmp_path / "m.safetensors").exists()
