"""jdl.data.from_arrays: arrays as a random-access source, and its checks at the boundary."""

import jax.numpy as jnp
import numpy as np
import pytest

import jdl.data as jd


def make(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n, dtype=np.int64)


def test_examples_and_batches_are_the_arrays_rows():
    x, y = make()
    source = jd.from_arrays(x, y)
    assert isinstance(source, jd.ArraySource) and len(source) == 10
    np.testing.assert_array_equal(source[3]["x"], x[3])
    assert int(source[-1]["y"]) == 9
    assert [int(e["y"]) for e in source.__getitems__([4, 1])] == [4, 1]
    batch = source.get_batch([2, -1, 0])
    np.testing.assert_array_equal(batch["x"], x[[2, 9, 0]])
    np.testing.assert_array_equal(batch["y"], [2, 9, 0])
    assert source.get_batch([])["x"].shape == (0, 2)
    np.testing.assert_array_equal(source[7:2:-2]["y"], [7, 5, 3])  # slices give batches
    # Examples are copies: changing one leaves the source as it was.
    source[0]["x"][:] = -1
    assert source[0]["x"][0] == 0
    assert source.in_memory and source.x is x


def test_index_errors():
    source = jd.from_arrays(*make())
    with pytest.raises(IndexError, match="index 10 out of range for the arrays of 10"):
        source[10]
    with pytest.raises(TypeError, match="bool"):
        source[True]
    with pytest.raises(TypeError, match="index must be an integer, got str"):
        source["0"]
    with pytest.raises(IndexError, match="index -11"):
        source.get_batch([0, -11])


def test_jax_arrays_become_numpy():
    source = jd.from_arrays(jnp.ones((4, 3)), jnp.arange(4))
    assert isinstance(source.x, np.ndarray) and source.x.shape == (4, 3)
    assert isinstance(source[1]["y"], np.ndarray)


def test_batches_and_as_arrays_read_it_whole():
    x, y = make()
    source = jd.from_arrays(x, y)
    got = [b["y"].tolist() for b in jd.batches(source, 5, shuffle=True, seed=3, num_epochs=2)]
    order = [jd.epoch_order(10, 3, e) for e in range(2)]
    assert got == [o[i : i + 5].tolist() for o in order for i in (0, 5)]
    arrays = jd.as_arrays(source)
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (
            np.zeros((10, 4)),
            np.zeros(9),
            ValueError,
            r"x and y must hold the same number of examples \(axis 0\): x has 10 "
            r"\(shape \(10, 4\)\), y has 9 \(shape \(9,\)\)",
        ),
        (np.float32(1.0), np.zeros(1), ValueError, r"x must have a leading axis .* got a 0-d"),
        (np.zeros(3), np.array(2), ValueError, r"y must have a leading axis .* got a 0-d"),
        ([[1.0], [2.0]], np.zeros(2), TypeError, "x must be a NumPy or JAX array .* got list"),
        (np.zeros(2), {"y": 1}, TypeError, "y must be a NumPy or JAX array .* got dict"),
        (None, np.zeros(2), TypeError, "got NoneType"),
        (np.array([1, "a", None], object), np.zeros(3), TypeError, "dtype object"),
    ],
)
def test_bad_inputs_name_what_was_expected_and_found(x, y, error, match):
    with pytest.raises(error, match=match):
        jd.from_arrays(x, y)


def test_as_source():
    x, y = make()
    assert isinstance(jd.as_source((x, y)), jd.ArraySource)
    examples = [{"x": 1, "y": 2}, {"x": 3, "y": 4}]
    assert jd.as_source(examples) is examples
    assert jd.as_source(tuple(examples)) == tuple(examples)  # a tuple of examples stays one
    with pytest.raises(ValueError, match=r"^validation=\(x, y\): x and y must hold"):
        jd.as_source((x, y[:3]), "validation")
    with pytest.raises(TypeError, match="train must be a random-access data source"):
        jd.as_source(iter(examples), "train")
