"""The four bundled datasets: sizes, features, values against their sources."""

import random
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

import jdl.data as jd
from jdl.data.builders import BUILDERS, JdlCoffee, JdlDigits, JdlIris, JdlMnist1d


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(len(a), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_bundled_names():
    assert jd.BUNDLED == ("iris", "digits", "mnist1d", "coffee")


def test_builders_are_registered_under_jdl_names():
    assert tfds.builder_cls("jdl_iris") is JdlIris
    assert tfds.builder_cls("jdl_digits") is JdlDigits
    assert tfds.builder_cls("jdl_mnist1d") is JdlMnist1d
    assert tfds.builder_cls("jdl_coffee") is JdlCoffee
    # TFDS' own iris stays what it was.
    assert tfds.builder_cls("iris") is not JdlIris
    assert JdlIris.__module__ == "jdl.data.builders"


@pytest.mark.parametrize("name", ["iris", "digits", "mnist1d", "coffee"])
def test_metadata_documents_the_dataset(name, data_dir):
    cls = BUILDERS[name]
    info = cls(data_dir=str(data_dir)).info  # metadata only: nothing is generated
    assert info.supervised_keys == ("x", "y")
    assert len(info.description) > 100
    assert str(info.version) == "1.0.0"
    for size in cls.SPLIT_SIZES.values():  # sizes are documented, e.g. "1,437"
        assert f"{size:,}" in cls.__doc__ and f"{size:,}" in info.description
    assert str(cls.X_SHAPE) in cls.__doc__ and str(cls.X_SHAPE) in info.description
    if name != "coffee":
        assert info.citation.startswith("@")  # BibTeX of the source
        assert info.homepage.startswith("https://")


def test_iris_is_a_fixed_stratified_split():
    train, test = jd.load("iris", "train"), jd.load("iris", "test")
    assert (len(train), len(test)) == (120, 30)
    a_train, a_test = jd.as_arrays(train), jd.as_arrays(test)
    assert a_train["x"].dtype == np.float32 and a_train["x"].shape == (120, 4)
    assert a_train["y"].dtype == np.int64 and a_train["y"].shape == (120,)
    np.testing.assert_array_equal(np.bincount(a_train["y"]), [40, 40, 40])
    np.testing.assert_array_equal(np.bincount(a_test["y"]), [10, 10, 10])
    # Same as sklearn's seeded stratified split, in the same order.
    iris = skdatasets.load_iris()
    x_tr, x_te, y_tr, y_te = train_test_split(
        iris.data.astype(np.float32),
        iris.target,
        test_size=30,
        stratify=iris.target,
        random_state=0,
    )
    np.testing.assert_array_equal(a_train["x"], x_tr)
    np.testing.assert_array_equal(a_test["y"], y_te)
    # "train+test" is all 150 flowers.
    everything = jd.as_arrays(jd.load("iris", "train+test"))
    assert len(everything["y"]) == 150
    np.testing.assert_array_equal(
        _sorted_rows(everything["x"]), _sorted_rows(iris.data.astype(np.float32))
    )


def test_digits_images_scaled_and_split():
    train, test = jd.load("digits", "train"), jd.load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    a_train, a_test = jd.as_arrays(train), jd.as_arrays(test)
    assert a_train["x"].shape == (1437, 8, 8, 1) and a_train["x"].dtype == np.float32
    assert a_train["x"].min() == 0.0 and a_train["x"].max() == 1.0
    assert a_train["y"].dtype == np.int64 and set(np.unique(a_train["y"])) == set(range(10))
    digits = skdatasets.load_digits()
    x = digits.images.astype(np.float32)[..., None] / 16
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    np.testing.assert_array_equal(a_train["x"], x_tr)
    np.testing.assert_array_equal(a_test["x"], x_te)
    np.testing.assert_array_equal(a_train["y"], y_tr)
    np.testing.assert_array_equal(a_test["y"], y_te)


@pytest.fixture(scope="session")
def mnist1d_package_call(data_dir):
    """``(args, arrays)`` of the ``mnist1d.data.make_dataset`` call that built jdl's mnist1d.

    Spies on the package function while jdl prepares the dataset; if another test
    prepared it first, calls the package directly instead.
    """
    import mnist1d.data

    real = mnist1d.data.make_dataset
    calls = []

    def spy(args=None, template=None):
        out = real(args, template)
        calls.append((dict(vars(args)), out))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist1d.data, "make_dataset", spy)
        jd.load("mnist1d")
    if calls:
        assert len(calls) == 1
        return calls[0]
    state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        args = mnist1d.data.get_dataset_args()
        return dict(vars(args)), real(args)
    finally:
        np.random.set_state(state)  # noqa: NPY002
        random.setstate(py_state)


def test_mnist1d_is_the_package_data_with_default_arguments(mnist1d_package_call):
    from mnist1d.data import get_dataset_args

    args, reference = mnist1d_package_call
    assert args == get_dataset_args(as_dict=True)
    train, test = jd.load("mnist1d", "train"), jd.load("mnist1d", "test")
    assert (len(train), len(test)) == (4000, 1000)
    a_train, a_test = jd.as_arrays(train), jd.as_arrays(test)
    assert a_train["x"].shape == (4000, 40) and a_train["x"].dtype == np.float32
    assert a_train["y"].dtype == np.int64
    np.testing.assert_array_equal(a_train["x"], reference["x"].astype(np.float32))
    np.testing.assert_array_equal(a_test["x"], reference["x_test"].astype(np.float32))
    np.testing.assert_array_equal(a_train["y"], reference["y"])
    np.testing.assert_array_equal(a_test["y"], reference["y_test"])


def test_mnist1d_values_match_a_direct_package_call(mnist1d_package_call):
    # Recorded from ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())``
    # (mnist1d 0.0.2.post1): the paper's data, bit for bit up to float32 rounding.
    train, test = jd.load("mnist1d", "train"), jd.load("mnist1d", "test")
    assert [int(train[i]["y"]) for i in range(12)] == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1, 6, 9]
    assert [int(test[i]["y"]) for i in range(12)] == [2, 6, 3, 9, 4, 3, 1, 9, 5, 2, 0, 7]
    np.testing.assert_allclose(
        train[0]["x"][:4],
        [-0.33200566736939013, -0.4719103656557236, -0.778697076293495, -1.0097408265367045],
        rtol=1e-7,
    )
    np.testing.assert_allclose(
        train[3999]["x"][-3:],
        [-1.2162451343416705, -1.4649417006350856, -1.6509928567520655],
        rtol=1e-7,
    )
    np.testing.assert_allclose(
        test[999]["x"][:3],
        [-0.5193287078205188, -0.6987227646777667, -1.2810376906623184],
        rtol=1e-7,
    )
    a_train = jd.as_arrays(train)
    np.testing.assert_array_equal(
        np.bincount(a_train["y"]), [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    )
    assert a_train["x"].astype(np.float64).sum() == pytest.approx(-51.78746787509559, abs=1e-3)


@pytest.mark.slow
def test_mnist1d_equals_an_independent_direct_call():
    from mnist1d.data import get_dataset_args, make_dataset

    state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        reference = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)  # noqa: NPY002
        random.setstate(py_state)
    np.testing.assert_array_equal(
        jd.as_arrays(jd.load("mnist1d", "test"))["x"], reference["x_test"].astype(np.float32)
    )


def test_mnist1d_generation_restores_global_random_state(monkeypatch):
    import mnist1d.data

    def fake_make_dataset(args):
        np.random.seed(args.seed)  # what the real one does first  # noqa: NPY002
        random.seed(args.seed)
        return {"x": np.zeros((1, 40))}

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_make_dataset)
    from jdl.data.builders import make_mnist1d_arrays

    np.random.seed(1234)  # noqa: NPY002
    random.seed(1234)
    expected_np, expected_py = np.random.random(), random.random()  # noqa: NPY002
    np.random.seed(1234)  # noqa: NPY002
    random.seed(1234)
    assert make_mnist1d_arrays()["x"].shape == (1, 40)
    assert np.random.random() == expected_np  # noqa: NPY002
    assert random.random() == expected_py


def test_coffee_regression_targets():
    train, test = jd.load("coffee", "train"), jd.load("coffee", "test")
    assert (len(train), len(test)) == (512, 128)
    a = jd.as_arrays(train)
    assert a["x"].shape == a["y"].shape == (512, 1)
    assert a["x"].dtype == a["y"].dtype == np.float32
    assert 0.0 <= a["x"].min() and a["x"].max() < 1.0
    residual = a["y"][:, 0] - jd.coffee_demand(24.0 * a["x"][:, 0])
    assert residual.std() == pytest.approx(0.03, rel=0.15)
    assert abs(residual.mean()) < 0.01
    assert not np.array_equal(jd.as_arrays(test)["x"][:10], a["x"][:10])


def test_loading_never_imports_tensorflow():
    jd.load("iris")
    assert "tensorflow" not in sys.modules
