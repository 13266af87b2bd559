"""jdl.data.load on bundled datasets: the source protocol, splits, errors; as_arrays."""

import pickle

import grain
import numpy as np
import pytest

import jdl.data as jd


@pytest.fixture(scope="module")
def iris():
    return jd.load("iris")


def test_source_protocol(iris):
    assert isinstance(iris, jd.SupervisedSource)
    assert len(iris) == 120
    assert iris.name == "iris" and iris.split == "train"
    assert repr(iris) == "SupervisedSource(name='iris', split='train', len=120, in_memory=True)"
    example = iris[5]
    assert set(example) == {"x", "y"}
    assert isinstance(example["x"], np.ndarray) and example["x"].shape == (4,)
    assert isinstance(example["y"], np.ndarray) and example["y"].shape == ()
    assert example["x"].dtype == np.float32 and example["y"].dtype == np.int64
    np.testing.assert_array_equal(iris[-1]["x"], iris[119]["x"])
    np.testing.assert_array_equal(iris[np.int64(7)]["x"], iris[7]["x"])
    many = iris.__getitems__([3, 0, 3])
    np.testing.assert_array_equal(many[0]["x"], iris[3]["x"])
    np.testing.assert_array_equal(many[1]["x"], iris[0]["x"])
    assert [int(e["y"]) for e in iris] == [int(iris[i]["y"]) for i in range(120)]


def test_in_memory_and_lazy_sources_agree(iris):
    lazy = jd.load("iris", in_memory=False)
    assert iris.in_memory and not lazy.in_memory
    assert repr(lazy) == "SupervisedSource(name='iris', split='train', len=120)"
    for i in (0, 17, -1):
        for key in ("x", "y"):
            assert type(lazy[i][key]) is type(iris[i][key]) is np.ndarray
            assert lazy[i][key].dtype == iris[i][key].dtype
            np.testing.assert_array_equal(lazy[i][key], iris[i][key])
    idx = [5, 0, 119, -2]
    for key in ("x", "y"):
        np.testing.assert_array_equal(lazy.get_batch(idx)[key], iris.get_batch(idx)[key])
    np.testing.assert_array_equal(jd.as_arrays(lazy)["x"], jd.as_arrays(iris)["x"])


def test_get_batch(iris):
    batch = iris.get_batch(np.array([3, 1, 3]))
    assert batch["x"].shape == (3, 4) and batch["y"].shape == (3,)
    np.testing.assert_array_equal(batch["x"][0], iris[3]["x"])
    np.testing.assert_array_equal(batch["x"][1], iris[1]["x"])
    for source in (iris, jd.load("iris", in_memory=False)):
        empty = source.get_batch([])
        assert empty["x"].shape == (0, 4) and empty["x"].dtype == np.float32
        assert empty["y"].shape == (0,) and empty["y"].dtype == np.int64
        with pytest.raises(IndexError, match="index 120 out of range"):
            source.get_batch([0, 120])
        with pytest.raises(TypeError, match="1-D sequence of integers"):
            source.get_batch([0.5])


def test_reads_are_copies(iris):
    before = iris[4]["x"].copy()
    iris[4]["x"][:] = -1.0
    iris.get_batch([4])["x"][:] = -1.0
    np.testing.assert_array_equal(iris[4]["x"], before)


def test_bad_indices(iris):
    with pytest.raises(IndexError, match="index 120 out of range for 'iris'/train of 120"):
        iris[120]
    with pytest.raises(IndexError, match="-121"):
        iris[-121]
    with pytest.raises(TypeError, match="index must be an integer, got str"):
        iris["0"]
    with pytest.raises(TypeError, match="bool"):
        iris[True]


def test_source_carries_dataset_info(iris):
    assert iris.info.num_classes == 3
    assert iris.info.splits == {"train": 120, "test": 30}
    assert iris.info.x_shape == (4,)


def test_source_pickles_and_works_with_grain(iris):
    clone = pickle.loads(pickle.dumps(iris))
    assert len(clone) == 120
    np.testing.assert_array_equal(clone[11]["x"], iris[11]["x"])
    ds = grain.MapDataset.source(iris).batch(16)
    first = ds[0]
    assert first["x"].shape == (16, 4)
    np.testing.assert_array_equal(first["x"][3], iris[3]["x"])


def test_split_expressions():
    assert len(jd.load("iris", "train[:10]")) == 10
    assert len(jd.load("iris", "test[50%:]")) == 15
    assert len(jd.load("iris", "train+test")) == 150
    both = jd.load("iris", "train+test")
    np.testing.assert_array_equal(both[120]["x"], jd.load("iris", "test")[0]["x"])


def test_unknown_split_lists_the_splits():
    with pytest.raises(
        jd.UnknownSplitError, match=r"'validation'.*available splits: \['train', 'test'\]"
    ):
        jd.load("iris", "validation")
    with pytest.raises(ValueError, match="'valid'"):  # UnknownSplitError is a ValueError
        jd.load("iris", "train+valid[:5]")
    with pytest.raises(TypeError, match="split must be a str"):
        jd.load("iris", 0)


def test_unknown_name_lists_bundled_and_explains_catalog():
    with pytest.raises(jd.UnknownDatasetError) as info:
        jd.load("no_such_dataset_xyz")
    message = str(info.value)
    assert "'no_such_dataset_xyz'" in message
    assert "['iris', 'digits', 'mnist1d', 'coffee']" in message
    assert "prepared" in message and "TFDS catalog" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(jd.UnknownDatasetError, match="Did you mean 'iris'"):
        jd.load("irsi")
    with pytest.raises(jd.UnknownDatasetError):
        jd.load("")
    with pytest.raises(TypeError, match="dataset name must be a str, got int"):
        jd.load(3)


def test_as_arrays_stacks_in_order(iris):
    arrays = jd.as_arrays(iris)
    assert set(arrays) == {"x", "y"}
    assert arrays["x"].shape == (120, 4) and arrays["y"].shape == (120,)
    for i in (0, 57, 119):
        np.testing.assert_array_equal(arrays["x"][i], iris[i]["x"])
        assert arrays["y"][i] == iris[i]["y"]


def test_as_arrays_on_plain_sequences_and_errors():
    source = [{"a": np.full((2,), i), "b": i} for i in range(3)]
    arrays = jd.as_arrays(source)
    np.testing.assert_array_equal(arrays["a"], [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(arrays["b"], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        jd.as_arrays([])
    with pytest.raises(TypeError, match="random-access"):
        jd.as_arrays(iter(source))
    with pytest.raises(TypeError, match="example 1 is a int"):
        jd.as_arrays([{"a": 1}, 2])
    with pytest.raises(KeyError, match="example 1 has keys"):
        jd.as_arrays([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="different shapes"):
        jd.as_arrays([{"a": np.zeros(2)}, {"a": np.zeros(3)}])
