"""Keras VGG16 (weights=None, JAX backend) vs jdl's vgg16 with the converted weights."""

from __future__ import annotations

import numpy as np
import pytest

from jdl import pretrained

pytestmark = pytest.mark.interop

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def keras_vgg16():
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    # Keras initialises biases to zero: give them values so the bias mapping is checked too.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.05, 0.05, bias.shape).astype(np.float32)])
    return model


@pytest.mark.parametrize("filename", ["vgg16.weights.h5", "vgg16_legacy.h5"])
def test_vgg16_logits_match_keras(keras_vgg16, tmp_path, filename):
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        keras_vgg16.save_weights(str(path))  # Keras 3 layout (layers named by type)
    else:
        keras_vgg16.save(str(path))  # legacy HDF5 layout (layers named as in the model)
    loaded = pretrained.from_keras(path)
    assert loaded.report.complete
    assert loaded.model.num_outputs == 1000 and loaded.model.dropout == 0.0
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32) * 50
    ref = np.asarray(keras_vgg16.predict(x, verbose=0))
    out = np.asarray(loaded.model.apply(loaded.variables, x, train=False))
    diff = float(np.max(np.abs(out - ref)))
    print(f"VGG16 ({filename}): max |logit diff| = {diff:.3g} (scale {np.max(np.abs(ref)):.3g})")
    assert diff < 1e-4
