"""TFDS catalog datasets through jdl.data.load, without network (tfds.testing.mock_data)."""

import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jdl.data as jd
from jdl.data.catalog import _supervised_keys


@pytest.fixture
def mocked_tfds():
    # USE_CODE: metadata from the MNIST builder class, random examples, no files, no network.
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_catalog_keys_are_renamed_to_x_and_y(mocked_tfds, tmp_path):
    source = jd.load("mnist", "train", data_dir=tmp_path)
    assert len(source) == 12
    example = source[3]
    assert set(example) == {"x", "y"}
    assert example["x"].shape == (28, 28, 1) and example["x"].dtype == np.uint8
    assert example["y"].shape == () and example["y"].dtype == np.int64
    assert source.info.supervised_keys == ("image", "label")
    assert source.info.num_classes == 10 and not source.info.bundled


def _planted_mnist(self, split, decoders=None, deserialize_method=None, **kwargs):
    """A stand-in for MNIST's data source: image i is filled with i, its label is i % 10."""
    del self, decoders, deserialize_method, kwargs
    size = 20 if split == "train" else 6
    return [
        {"image": np.full((28, 28, 1), i, dtype=np.uint8), "label": np.int64(i % 10)}
        for i in range(size)
    ]


def test_catalog_values_and_batches(tmp_path):
    # mock_data's own random source cannot serve __getitems__ (a TFDS mock bug), so plant
    # a deterministic source and check that the right features land in "x" and "y".
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_CODE, as_data_source_fn=_planted_mnist
    ):
        source = jd.load("mnist", "train", data_dir=tmp_path)
        assert len(source) == 20 and len(jd.load("mnist", "test", data_dir=tmp_path)) == 6
    assert int(source[13]["x"][0, 0, 0]) == 13 and int(source[13]["y"]) == 3
    normalise = lambda ex: {"x": ex["x"].astype(np.float32) / 255.0, "y": ex["y"]}
    batches = list(jd.batches(source, 8, shuffle=False, transform=normalise))
    assert [b["x"].shape for b in batches] == [(8, 28, 28, 1), (8, 28, 28, 1)]
    assert batches[0]["x"].dtype == np.float32
    np.testing.assert_allclose(batches[1]["x"][:, 0, 0, 0], np.arange(8, 16) / 255.0)
    np.testing.assert_array_equal(batches[1]["y"], np.arange(8, 16) % 10)
    arrays = jd.as_arrays(source)
    np.testing.assert_array_equal(arrays["y"], np.arange(20) % 10)


def test_catalog_dataset_info(mocked_tfds):
    info = jd.dataset_info("mnist")
    assert info.x_shape == (28, 28, 1) and info.x_dtype == np.uint8
    assert info.num_classes == 10
    assert info.splits == {}  # unknown until the data is prepared


def test_unprepared_catalog_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(jd.DatasetNotPreparedError) as info:
        jd.load("mnist", "train", data_dir=tmp_path)
    message = str(info.value)
    assert "'mnist' is not prepared" in message and str(tmp_path) in message
    assert "array_record" in message and "download=True" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not any(tmp_path.rglob("*.array_record*"))


def test_supervised_keys_must_be_a_flat_pair():
    def fake(keys):
        info = types.SimpleNamespace(supervised_keys=keys, features={"a": None, "b": None})
        return types.SimpleNamespace(info=info, name="fake")

    assert _supervised_keys(fake(("a", "b"))) == ("a", "b")
    with pytest.raises(
        ValueError, match=r"declares no supervised keys \(its features are \['a', 'b'\]\)"
    ):
        _supervised_keys(fake(None))
    with pytest.raises(ValueError, match="flat pair"):
        _supervised_keys(fake((("a", "b"), "b")))
