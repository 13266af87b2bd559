"""jdl.train.save_model / load_model: a model for inference, saved and loaded back by one call."""

from __future__ import annotations

import hashlib
import json
import pathlib

import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl
from jdl import nn
from jdl.train import ModelFileError, load_model, predict, read_model_info, save_model


def _variables(model, x, seed=0):
    """The model's variables with every leaf made random (BatchNorm variances positive), so
    that a round trip that loses or swaps any of them changes the outputs."""
    variables = model.init(jax.random.key(seed), x[:1], train=False)
    leaves, tree = jax.tree.flatten(variables)
    rng = np.random.default_rng(seed)
    noisy = [np.abs(rng.normal(size=a.shape)) + 0.5 for a in leaves]
    return jax.tree.unflatten(
        tree, [jnp.asarray(n, a.dtype) for n, a in zip(noisy, leaves, strict=True)]
    )


_CASES = {
    "mlp": (nn.MLP(widths=(8, 8), num_outputs=3, activation=jax.nn.gelu, dropout=0.5), (7, 5)),
    "mlp_bfloat16": (
        nn.MLP(widths=(8,), num_outputs=3, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16),
        (7, 5),
    ),
    "cnn": (nn.CNN(features=(4, 4), num_outputs=3, ndim=1, strides=2, batch_norm=True), (7, 12)),
    "cifar_resnet": (nn.CifarResNet(depth=8, width=4, num_outputs=3), (7, 8, 8, 3)),
    "resnet_bottleneck": (nn.ResNet((1, 1), nn.Bottleneck, num_outputs=3, width=4), (7, 16, 16, 3)),
    "rnn": (nn.RNNClassifier(3, cell="gru", hidden_size=4, bidirectional=True), (7, 6, 2)),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_a_loaded_model_predicts_bitwise_what_the_saved_one_did(tmp_path, case):
    model, shape = _CASES[case]
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    variables = _variables(model, x)
    before = predict(model, variables, x, batch_size=4)
    save_model(tmp_path / "m", model, variables)
    loaded, loaded_variables = load_model(tmp_path / "m")
    assert loaded == model and type(loaded) is type(model)
    assert jax.tree.structure(loaded_variables) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(loaded_variables), jax.tree.leaves(variables), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(predict(loaded, loaded_variables, x, batch_size=4), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left beside it
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "variables.msgpack"]


def test_a_train_state_saves_its_variables_not_its_optimizer_state(tmp_path):
    model = nn.MLP(widths=(8,), num_outputs=3, batch_norm=True)
    x = np.ones((4, 5), np.float32)
    state = jdl.train.create_state(model, optax.adam(1e-3), x[:1])
    path = jdl.save_model(tmp_path / "m", model, state, metadata={"classes": ["a", "b", "c"]})
    info = read_model_info(path)
    assert {k.split("/")[0] for k in info["variables"]} == {"params", "batch_stats"}
    assert info["metadata"] == {"classes": ["a", "b", "c"]}
    assert info["format"] == "jdl-model" and info["format_version"] == 1
    assert info["jdl_version"] == jdl.__version__
    loaded, variables = jdl.load_model(path)
    assert jax.tree.structure(variables) == jax.tree.structure(state.variables)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(state.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(predict(loaded, variables, x), predict(model, state, x))


def test_the_top_level_names_are_the_train_functions():
    assert jdl.save_model is jdl.train.save_model and jdl.load_model is jdl.train.load_model


class _Custom(flax_nn.Module):
    """A model of the user's own, outside jdl.nn and the registry."""

    num_outputs: int = 2
    scale: float = 1.5

    @flax_nn.compact
    def __call__(self, x, *, train=False):
        return self.scale * flax_nn.Dense(self.num_outputs, name="head")(x)


class _Scaled(_Custom):
    pass


def test_an_unknown_class_is_refused_on_load_unless_passed(tmp_path):
    model = _Custom()
    x = np.ones((3, 4), np.float32)
    variables = _variables(model, x)
    save_model(tmp_path / "m", model, variables)
    ref = f"{__name__}:_Custom"
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "m")
    assert repr(ref) in str(info.value) and "classes=[MyModel]" in str(info.value)
    assert "register_model" in str(info.value)
    loaded, loaded_variables = load_model(tmp_path / "m", classes=[_Custom])
    assert loaded == model
    np.testing.assert_array_equal(
        predict(loaded, loaded_variables, x), predict(model, variables, x)
    )
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    info["model"]["class"] = "__main__:_Custom"  # saved from a script, loaded from a module
    (tmp_path / "m" / "model.json").write_text(json.dumps(info))
    assert load_model(tmp_path / "m", classes=[_Custom])[0] == model
    with pytest.raises(ModelFileError, match="'__main__:_Custom'"):
        load_model(tmp_path / "m", classes=[_Scaled])  # another name: still refused
    with pytest.raises(TypeError, match="classes must hold flax.linen.Module subclasses"):
        load_model(tmp_path / "m", classes=[int])


@pytest.mark.parametrize("ref", ["os:system", "builtins:exec", "jdl.train.export:save_model", ""])
def test_a_class_named_in_a_crafted_file_is_never_imported(tmp_path, ref):
    model = nn.MLP(widths=(), num_outputs=2)
    save_model(tmp_path / "m", model, _variables(model, np.ones((1, 3), np.float32)))
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    info["model"]["class"] = ref
    (tmp_path / "m" / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match="not a model class jdl rebuilds") as err:
        load_model(tmp_path / "m")
    assert repr(ref) in str(err.value) and "jdl.nn.mlp:MLP" in str(err.value)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (nn.MLP(widths=(4,), num_outputs=2, activation=lambda x: 2 * x), "MLP.activation"),
        (
            nn.MLP(widths=(4,), num_outputs=2, kernel_init=jax.nn.initializers.lecun_normal()),
            "MLP.kernel_init",
        ),  # fmt: skip
        (nn.BasicBlock(features=4), "BasicBlock.conv"),  # a functools.partial
    ],
)
def test_a_field_that_would_not_load_is_refused_and_nothing_written(tmp_path, model, field):
    with pytest.raises(ValueError, match=rf"cannot record model field {field} = ") as info:
        save_model(tmp_path / "m", model, {"params": {"w": np.ones(2, np.float32)}})
    assert repr(getattr(model, field.split(".")[1]))[:20] in str(info.value)
    assert not list(tmp_path.iterdir())


def _saved(tmp_path):
    model = nn.MLP(widths=(4,), num_outputs=2, batch_norm=True)
    return save_model(tmp_path / "m", model, _variables(model, np.ones((1, 3), np.float32)))


def test_what_is_not_a_saved_model_is_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model at .*nowhere"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="is a file.*jdl.pretrained.load_jdl"):
        load_model(tmp_path / "w.safetensors")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hi")
    with pytest.raises(ModelFileError, match=r"no model.json \(it holds \['notes.txt'\]\)"):
        load_model(tmp_path / "folder")
    path = _saved(tmp_path)
    (path / "model.json").write_text('{"format": "keras"}')
    with pytest.raises(ModelFileError, match="format 'keras', expected 'jdl-model'"):
        load_model(path)
    (path / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(path)


def test_a_newer_format_version_says_to_upgrade(tmp_path):
    path = _saved(tmp_path)
    info = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**info, "format_version": 2}))
    with pytest.raises(ModelFileError, match="format version 2.*upgrade jdl"):
        load_model(path)


def test_missing_or_corrupted_weights_are_refused(tmp_path):
    path = _saved(tmp_path)
    weights = path / "variables.msgpack"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit pattern inside an array: same size, other values
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt or was changed.*SHA-256"):
        load_model(path)
    weights.write_bytes(bytes(data[: len(data) // 2]))  # truncated, with a matching checksum
    _record_checksum(path)
    with pytest.raises(ModelFileError, match="cannot be read"):
        load_model(path)
    weights.unlink()
    with pytest.raises(ModelFileError, match="has no variables.msgpack"):
        load_model(path)


def _record_checksum(path):
    info = json.loads((path / "model.json").read_text())
    info["weights_sha256"] = hashlib.sha256((path / "variables.msgpack").read_bytes()).hexdigest()
    (path / "model.json").write_text(json.dumps(info))


def test_weights_tampered_to_another_shape_are_refused_listing_each(tmp_path):
    from flax import serialization

    path = _saved(tmp_path)
    tree = serialization.msgpack_restore((path / "variables.msgpack").read_bytes())
    tree["params"]["head"]["kernel"] = np.zeros((5, 2), np.float32)
    tree["batch_stats"]["BatchNorm_0"]["mean"] = np.zeros(4, np.float64)
    (path / "variables.msgpack").write_bytes(serialization.msgpack_serialize(tree))
    _record_checksum(path)  # a consistent tamper: only the recorded shapes tell
    with pytest.raises(ModelFileError, match=r"\(2 problem\(s\)\)") as info:
        load_model(path)
    message = str(info.value)
    assert "params/head/kernel: shape (5, 2) in variables.msgpack, (4, 2) recorded" in message
    assert "batch_stats/BatchNorm_0/mean: dtype float64 in variables.msgpack, float32" in message


def test_overwriting_is_refused_unless_asked_and_never_replaces_other_folders(tmp_path):
    path = _saved(tmp_path)
    other = nn.MLP(widths=(), num_outputs=2)
    variables = _variables(other, np.ones((1, 3), np.float32), seed=3)
    with pytest.raises(FileExistsError, match="already saved.*overwrite=True"):
        save_model(path, other, variables)
    assert load_model(path)[0].widths == (4,)
    save_model(path, other, variables, overwrite=True)
    assert load_model(path)[0] == other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a saved model.*never replaces it"):
        save_model(tmp_path / "mine", other, variables, overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_a_save_that_fails_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    other = nn.MLP(widths=(), num_outputs=2)
    variables = _variables(other, np.ones((1, 3), np.float32))

    def fail(self, *args, **kwargs):  # model.json is written after the weights
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "new", other, variables)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, other, variables, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no "new", no temporaries
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before  # the old model, whole
    assert load_model(path)[0].widths == (4,)


def test_bad_arguments_are_refused_at_the_call(tmp_path):
    model = nn.MLP(widths=(), num_outputs=2)
    variables = _variables(model, np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="save_model model must be a flax.linen.Module"):
        save_model(tmp_path / "m", "mlp", variables)
    with pytest.raises(TypeError, match='"params" entry'):
        save_model(tmp_path / "m", model, {"weights": variables["params"]})
    with pytest.raises(TypeError, match="metadata must be a dict; got list"):
        save_model(tmp_path / "m", model, variables, metadata=["a"])
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        save_model(tmp_path / "m", model, variables, metadata={"when": object()})
    with pytest.raises(TypeError, match="numeric arrays; params/w is a str"):
        save_model(tmp_path / "m", model, {"params": {"w": "text"}})
    assert not list(tmp_path.iterdir())


def test_an_overwrite_whose_final_rename_fails_puts_the_old_model_back(tmp_path, monkeypatch):
    from jdl._core import files

    path = _saved(tmp_path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    real, calls = files.os.replace, []

    def replace(src, dst):  # the 1st rename moves the old model aside, the 2nd fails
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    other = nn.MLP(widths=(), num_outputs=2)
    with pytest.raises(OSError, match="rename failed"):
        save_model(path, other, _variables(other, np.ones((1, 3), np.float32)), overwrite=True)
    monkeypatch.undo()
    assert len(calls) == 3  # aside, the failed one, back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
