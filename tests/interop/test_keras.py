"""Keras VGG16 and ResNet50 (weights=None, JAX backend) vs jdl models with the converted weights."""

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


@pytest.fixture(scope="module")
def keras_resnet50():
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, classifier_activation=None)
    # Keras initialises conv biases and BatchNorm statistics to 0 / 1: give them values so
    # the bias folding and the BatchNorm mapping are checked too.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = weights
            layer.set_weights([kernel, rng.uniform(-0.1, 0.1, bias.shape).astype(np.float32)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = weights[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c).astype(np.float32),  # gamma
                    rng.uniform(-0.1, 0.1, c).astype(np.float32),  # beta
                    rng.uniform(-0.1, 0.1, c).astype(np.float32),  # moving_mean
                    rng.uniform(0.5, 1.5, c).astype(np.float32),  # moving_variance
                ]
            )
    return model


def _strip_layer_names(path):
    """Remove the layer names that recent Keras 3 records, as older Keras 3 files lack them."""
    import h5py

    with h5py.File(path, "r+") as f:

        def strip(_, item):
            if isinstance(item, h5py.Group) and "name" in item.attrs:
                del item.attrs["name"]

        f.visititems(strip)


@pytest.mark.parametrize(
    "layout", ["resnet50.weights.h5", "resnet50_unnamed.weights.h5", "resnet50_legacy.h5"]
)
def test_resnet50_logits_match_keras(keras_resnet50, tmp_path, layout):
    path = tmp_path / layout
    if layout.endswith(".weights.h5"):
        keras_resnet50.save_weights(str(path))  # Keras 3 layout (layers named by type)
        if "unnamed" in layout:
            _strip_layer_names(path)  # map by Keras' layer order
    else:
        keras_resnet50.save(str(path))  # legacy HDF5 layout (layers named as in the model)
    loaded = pretrained.from_keras(path)
    assert loaded.report.complete
    m = loaded.model
    assert m.stage_sizes == (3, 4, 6, 3) and m.stride_in_1x1 and m.bn_epsilon == 1.001e-5
    assert m.num_outputs == 1000
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32) * 50
    ref = np.asarray(keras_resnet50.predict(x, verbose=0))
    out = np.asarray(m.apply(loaded.variables, x, train=False))
    diff = float(np.max(np.abs(out - ref)))
    print(f"ResNet50 ({layout}): max |logit diff| = {diff:.3g} (scale {np.max(np.abs(ref)):.3g})")
    assert diff < 1e-4
