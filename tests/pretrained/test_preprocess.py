"""Preprocessing recipes of each weight source."""

from __future__ import annotations

import numpy as np
import pytest

from jdl.pretrained import preprocess as pp


def test_torchvision_recipe_on_a_constant_image():
    img = np.full((1, 300, 400, 3), 0.5, np.float32)
    out = np.asarray(pp.preprocess(img, "torchvision"))
    assert out.shape == (1, 224, 224, 3)
    expected = (0.5 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 100, 100], expected, rtol=1e-5)


def test_keras_caffe_recipe_flips_to_bgr_and_subtracts_the_mean():
    img = np.zeros((224, 224, 3), np.float32)
    img[..., 0] = 1.0  # pure red
    out = np.asarray(pp.preprocess(img, "keras"))
    np.testing.assert_allclose(out[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-5)


def test_resize_and_crop_geometry():
    x = np.arange(2 * 6 * 10 * 1, dtype=np.float32).reshape(2, 6, 10, 1)
    assert pp.resize_shorter(x, 3).shape == (2, 3, 5, 1)
    assert pp.resize_shorter(x.transpose(0, 2, 1, 3), 3).shape == (2, 5, 3, 1)
    crop = np.asarray(pp.center_crop(x, (2, 4)))
    np.testing.assert_array_equal(crop, x[:, 2:4, 3:7])
    with pytest.raises(ValueError, match="cannot crop"):
        pp.center_crop(x, 7)
    with pytest.raises(ValueError, match="3 means"):
        pp.normalize(x, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="unknown preprocessing"):
        pp.preprocess(x, "onnx")
