"""jdl.data.dataset_info: the summary later code relies on (num_classes, shapes, splits)."""

import numpy as np
import pytest

import jdl.data as jd

EXPECTED = {
    # name: (splits, x_shape, y_shape, y_dtype, num_classes)
    "iris": ({"train": 120, "test": 30}, (4,), (), np.int64, 3),
    "digits": ({"train": 1437, "test": 360}, (8, 8, 1), (), np.int64, 10),
    "mnist1d": ({"train": 4000, "test": 1000}, (40,), (), np.int64, 10),
    "coffee": ({"train": 512, "test": 128}, (1,), (1,), np.float32, None),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bundled_dataset_info(name):
    splits, x_shape, y_shape, y_dtype, num_classes = EXPECTED[name]
    info = jd.dataset_info(name)
    assert isinstance(info, jd.DatasetInfo)
    assert info.name == name and info.bundled
    assert info.splits == splits
    assert list(info.splits) == ["train", "test"]
    assert info.x_shape == x_shape and info.x_dtype == np.float32
    assert info.y_shape == y_shape and info.y_dtype == y_dtype
    assert info.num_classes == num_classes
    assert info.task == ("regression" if num_classes is None else "classification")
    assert info.supervised_keys == ("x", "y")
    assert len(info.description) > 100
    assert info.num_examples("test") == splits["test"]


def test_info_matches_the_data():
    info = jd.dataset_info("digits")
    example = jd.load("digits", "test")[0]
    assert example["x"].shape == info.x_shape and example["x"].dtype == info.x_dtype
    assert example["y"].shape == info.y_shape and example["y"].dtype == info.y_dtype


def test_info_errors():
    info = jd.dataset_info("iris")
    with pytest.raises(
        jd.UnknownSplitError, match=r"no split 'valid'; known splits: \['train', 'test'\]"
    ):
        info.num_examples("valid")
    with pytest.raises(jd.UnknownDatasetError, match="Bundled datasets"):
        jd.dataset_info("nope_not_a_dataset")
    with pytest.raises(TypeError):
        jd.dataset_info(None)
