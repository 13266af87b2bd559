"""Model configs resolve classes and functions through jdl's registry only (issue #19)."""

from __future__ import annotations

import functools
import json

import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from jdl import nn, pretrained
from jdl.nn import registry

from .conftest import random_variables

_EVIL_REFS = [
    "jdl.pretrained._config:sys.exit",  # a jdl module's imports were walkable
    "jdl.pretrained._config:os.system",
    "jdl.nn.mlp:jax.numpy.load",
    "jdl.nn.mlp:MLP.__init__.__globals__",  # a dunder attribute path
    "jax.nn:relu.__globals__",
    "numpy:load",  # not a jdl module
    "builtins:exec",
    "jdl.nn.init:get_initializer",  # real jdl functions that are not activations
    "jdl.pretrained.hub:download",
    "",
]


def _file(path, config):
    meta = {"format": "jdl", "format_version": "1", "model": json.dumps(config), "info": "{}"}
    save_file({"params/head/kernel": np.zeros((2, 2), np.float32)}, str(path), metadata=meta)
    return path


def _mlp_config(**fields):
    return {
        "class": "jdl.nn.mlp:MLP",
        "fields": {"widths": {"__tuple__": [2]}, "num_outputs": 2, **fields},
    }


@pytest.mark.parametrize("ref", _EVIL_REFS)
@pytest.mark.parametrize("field", ["activation", "kernel_init"])
def test_field_refs_outside_the_registry_are_refused(tmp_path, ref, field):
    path = _file(tmp_path / "evil.safetensors", _mlp_config(**{field: {"__ref__": ref}}))
    with pytest.raises(pretrained.WeightFileError) as info:  # not SystemExit, not a call
        pretrained.load(path)
    message = str(info.value)
    assert repr(ref) in message and f"MLP.{field}" in message
    assert "allowed references are" in message and "jax.nn:relu" in message
    assert "model=" in message


@pytest.mark.parametrize("ref", [*_EVIL_REFS, "jdl.nn.resnet_blocks:Bottleneck", "jax.nn:relu"])
def test_model_classes_outside_the_registry_are_refused(tmp_path, ref):
    path = _file(tmp_path / "evil.safetensors", {"class": ref, "fields": {}})
    with pytest.raises(pretrained.WeightFileError) as info:
        pretrained.load_jdl(path)
    message = str(info.value)
    assert repr(ref) in message and "jdl.nn.mlp:MLP" in message and "register_model" in message


def test_unknown_fields_are_refused(tmp_path):
    path = _file(tmp_path / "evil.safetensors", _mlp_config(parent="x", command="touch pwned"))
    with pytest.raises(pretrained.WeightFileError, match=r"\['command', 'parent'\]"):
        pretrained.load_jdl(path)


def _my_activation(x):
    return x * 2


@pytest.mark.parametrize(
    "fields",
    [
        {"activation": _my_activation},
        {"kernel_init": jax.nn.initializers.lecun_normal()},  # a closure
        {"activation": functools.partial(jax.nn.gelu, approximate=False)},
    ],
)
def test_saving_a_field_jdl_cannot_read_back_is_refused_up_front(tmp_path, fields):
    model = nn.MLP(widths=(4,), num_outputs=2, **fields)
    variables = random_variables(model, (1, 3))
    with pytest.raises(ValueError, match=r"cannot record model field MLP\.") as info:
        pretrained.save(tmp_path / "m.safetensors", model, variables)
    assert "jax.nn:gelu" in str(info.value) and "model=None" in str(info.value)
    assert not list(tmp_path.iterdir())
    # The documented way out: weights only, the model passed back at load time.
    path = pretrained.save(tmp_path / "m.safetensors", None, variables)
    assert pretrained.load_jdl(path, model=model).model is model


class _Unregistered(flax_nn.Module):
    num_outputs: int = 2

    @flax_nn.compact
    def __call__(self, x, *, train=False):
        return flax_nn.Dense(self.num_outputs, name="head")(x)


class _Registered(_Unregistered):
    pass


def test_unregistered_model_classes_are_refused_at_save_time(tmp_path):
    model = _Unregistered()
    variables = random_variables(model, (1, 3))
    with pytest.raises(ValueError, match="_Unregistered") as info:
        pretrained.save(tmp_path / "m.safetensors", model, variables)
    assert "register_model" in str(info.value) and "jdl.nn.mlp:MLP" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_classes_of_registered_models_round_trip(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "test_config_registered", lambda **kw: _Registered(**kw))
    model = _Registered(num_outputs=3)
    variables = random_variables(model, (1, 3))
    path = pretrained.save(tmp_path / "m.safetensors", model, variables, input_shape=(1, 3))
    assert pretrained.load_jdl(path).model == model
    monkeypatch.delitem(registry._MODELS, "test_config_registered")
    with pytest.raises(pretrained.WeightFileError, match="_Registered"):
        pretrained.load_jdl(path)


@pytest.mark.parametrize(
    "fields",
    [
        {"activation": jax.nn.gelu, "output_activation": jax.nn.softmax},
        {"activation": jnp.tanh, "kernel_init": jax.nn.initializers.zeros},
        {"activation": flax_nn.relu, "bias_init": jax.nn.initializers.ones},
        {"activation": nn.identity, "kernel_init": "he", "bias_init": 0.01},
        {"activation": "gelu_tanh", "dtype": jnp.bfloat16, "param_dtype": jnp.float32},
    ],
)
def test_registered_functions_round_trip(tmp_path, fields):
    model = nn.MLP(widths=(4,), num_outputs=2, **fields)
    variables = random_variables(model, (1, 3))
    path = pretrained.save(tmp_path / "m.safetensors", model, variables, input_shape=(1, 3))
    assert pretrained.load(path).model == model


def test_refs_written_by_earlier_versions_still_load(tmp_path):
    # Before the registry, refs were module:qualname of the object (jax's private module).
    ref = f"{jax.nn.gelu.__module__}:{jax.nn.gelu.__qualname__}"
    path = _file(tmp_path / "old.safetensors", _mlp_config(activation={"__ref__": ref}))
    assert pretrained.load_jdl(path).model.activation is jax.nn.gelu
    block = {"__ref__": "jdl.nn.resnet_blocks:Bottleneck"}
    config = {"class": "jdl.nn.resnet:ResNet", "fields": {"stage_sizes": {"__tuple__": [1]}}}
    config["fields"]["block_cls"] = block
    path = _file(tmp_path / "resnet.safetensors", config)
    assert pretrained.load_jdl(path).model.block_cls is nn.Bottleneck
