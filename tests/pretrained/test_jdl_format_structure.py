"""A jdl file saved without an input shape, loaded into another model.

Before, such a load took the file as it was and the first ``apply`` failed inside flax with
``ScopeParamNotFoundError``; now the load checks the variables against the model (for an
input shape guessed from the file's kernels) and lists what does not fit.
"""

from __future__ import annotations

import flax.linen as fnn
import jax
import numpy as np
import pytest

from jdl import nn, pretrained

from .conftest import random_variables

MLP = nn.MLP(widths=(8,), num_outputs=3)


@pytest.fixture
def mlp_file(tmp_path):
    """An MLP saved without input_shape (5 features in)."""
    return pretrained.save(tmp_path / "mlp.safetensors", MLP, random_variables(MLP, (1, 5)))


def _mismatch(path, model, **kw):
    with pytest.raises(pretrained.WeightMismatchError) as info:
        pretrained.load(path, model=model, **kw)
    message = str(info.value)
    assert repr(str(path)) in message and "without an input shape" in message
    assert "pass input_shape=" in message and "ScopeParam" not in message
    return info.value, message


def test_another_structure_is_refused_at_load_listing_paths_and_shapes(mlp_file):
    err, message = _mismatch(mlp_file, nn.MLP(widths=(8, 8), num_outputs=3))
    assert err.missing == ["params/Dense_1/bias", "params/Dense_1/kernel"]
    assert "params/Dense_1/kernel (8, 8)" in message and "params/Dense_1/bias (8,)" in message
    assert "saved from a model of class MLP" in message and "inputs of shape (1, 5)" in message


def test_another_head_size_is_a_shape_mismatch(mlp_file):
    err, message = _mismatch(mlp_file, nn.MLP(widths=(8,), num_outputs=4))
    assert ("params/head/kernel", (8, 4), (8, 3)) in err.mismatched
    assert "params/head/kernel: expected (8, 4), found (8, 3)" in message


def test_another_kind_of_model_lists_missing_and_unexpected_with_shapes(mlp_file):
    err, message = _mismatch(mlp_file, nn.CNN(features=(4,), num_outputs=3))
    assert "params/Dense_0/kernel" in err.unexpected and "params/Conv_0/kernel" in err.missing
    assert "params/Dense_0/kernel (5, 8)" in message  # the file's shape


def test_a_model_of_the_same_structure_loads_and_applies(mlp_file):
    other = nn.MLP(widths=(8,), num_outputs=3, activation="tanh")
    p = pretrained.load(mlp_file, model=other)
    assert p.model == other and p.report.complete
    assert other.apply(p.variables, np.ones((2, 5), np.float32), train=False).shape == (2, 3)


def test_non_strict_loads_what_fits_at_the_guessed_input(mlp_file):
    p = pretrained.load(mlp_file, model=nn.MLP(widths=(8,), num_outputs=4), strict=False)
    assert p.report.loaded == ["params/Dense_0/bias", "params/Dense_0/kernel"]
    assert [m[0] for m in p.report.mismatched] == ["params/head/bias", "params/head/kernel"]
    assert p.model.apply(p.variables, np.ones((1, 5), np.float32), train=False).shape == (1, 4)


def test_variables_saved_without_a_model_are_checked_too(tmp_path):
    path = pretrained.save(tmp_path / "v.safetensors", None, random_variables(MLP, (1, 5)))
    _, message = _mismatch(path, nn.MLP(widths=(6,), num_outputs=3))
    assert "saved from a model it does not record" in message and "rebuilds" not in message
    assert pretrained.load(path, model=MLP).report.complete


def test_a_flattening_head_depends_on_the_input_and_is_left_unchecked(tmp_path):
    cnn = nn.CNN(features=(4,), num_outputs=3, pool="max")  # head size depends on the image
    path = pretrained.save(tmp_path / "c.safetensors", cnn, random_variables(cnn, (1, 10, 10, 3)))
    same = nn.CNN(features=(4,), num_outputs=3, pool="max", activation="tanh")
    p = pretrained.load(path, model=same)
    assert p.report.complete
    assert same.apply(p.variables, np.ones((1, 10, 10, 3), np.float32), train=False).shape == (
        1,
        3,
    )
    err, _ = _mismatch(path, nn.CNN(features=(4, 4), num_outputs=3, pool="max"))
    assert "params/Conv_1/kernel" in err.missing


def test_a_recurrent_model_of_another_width(tmp_path):
    rnn = nn.RNNClassifier(cell="gru", hidden_size=6, num_outputs=2)
    path = pretrained.save(tmp_path / "r.safetensors", rnn, random_variables(rnn, (1, 7, 3)))
    err, _ = _mismatch(path, nn.RNNClassifier(cell="gru", hidden_size=5, num_outputs=2))
    assert err.mismatched and all(name.startswith("params/") for name, *_ in err.mismatched)
    p = pretrained.load(path, model=nn.RNNClassifier(cell="gru", hidden_size=6, num_outputs=2))
    assert p.report.complete


class _NeedsAMatrix(fnn.Module):
    """A model that refuses every guessed input (it wants a 5-D batch)."""

    @fnn.compact
    def __call__(self, x, train=False):
        if x.ndim != 5:
            raise ValueError("wants a 5-D batch")
        return fnn.Dense(3)(x)


def test_a_model_that_takes_none_of_the_guesses_asks_for_an_input_shape(mlp_file):
    with pytest.raises(pretrained.WeightFileError, match="records no input shape") as info:
        pretrained.load_jdl(mlp_file, _NeedsAMatrix())
    assert "Pass input_shape=" in str(info.value) and repr(str(mlp_file)) in str(info.value)


def test_the_file_s_own_model_is_taken_as_it_is(mlp_file, monkeypatch):
    from jdl.pretrained import jdl_format

    monkeypatch.setattr(jdl_format, "check_without_input_shape", lambda *a: pytest.fail("no"))
    p = pretrained.load(mlp_file)
    assert p.model == MLP and jax.tree_util.tree_structure(p.variables) == (
        jax.tree_util.tree_structure(random_variables(MLP, (1, 5)))
    )
