"""Properties of the data pipeline: from_arrays, jdl.data.batches and the training loop's
epoch and evaluation batching (jdl.train.feed), for arbitrary lengths and batch sizes."""

from __future__ import annotations

import math
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jdl
from jdl import losses
from jdl.data import as_source, batches, epoch_order, from_arrays
from jdl.nn import MLP
from jdl.train import feed

DTYPES = [np.bool_, np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64]
DTYPES.append(jnp.bfloat16)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def datasets(draw, *, max_examples: int = 40):
    """``(x, y)``: ``y[i] == i`` identifies example ``i``; ``x[i]`` is derived from ``i`` in a
    random dtype and per-example shape."""
    n = draw(st.integers(1, max_examples))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    dtype = draw(st.sampled_from(DTYPES))
    x = (np.arange(n).reshape((n,) + (1,) * len(shape)) + np.zeros(shape)).astype(dtype)
    y = np.arange(n, dtype=draw(st.sampled_from([np.int32, np.int64])))
    return x, y


def _ids(batch) -> np.ndarray:
    """The example indices of a batch, checking that its ``x`` rows belong to them."""
    ids = np.asarray(batch["y"])
    x = np.asarray(batch["x"])
    want = (ids.reshape((-1,) + (1,) * (x.ndim - 1)) + np.zeros(x.shape[1:])).astype(x.dtype)
    np.testing.assert_array_equal(x, want)
    return ids


# -- from_arrays -----------------------------------------------------------------------------


@given(datasets(max_examples=12), st.data())
def test_from_arrays_gives_back_each_example_and_batch_in_its_dtype(xy, data):
    x, y = xy
    source = from_arrays(x, y)
    n = len(x)
    assert len(source) == n
    i = data.draw(st.integers(-n, n - 1))
    example = source[i]
    assert example["x"].dtype == x.dtype and example["x"].shape == x.shape[1:]
    np.testing.assert_array_equal(example["x"], x[i])
    assert int(example["y"]) == y[i]
    indices = data.draw(st.lists(st.integers(-n, n - 1), max_size=6))
    batch = source.get_batch(indices)
    assert batch["x"].dtype == x.dtype and batch["y"].dtype == y.dtype
    assert batch["x"].shape == (len(indices), *x.shape[1:])
    np.testing.assert_array_equal(batch["y"], y[indices])
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            source[bad]


@given(datasets(max_examples=12), st.integers(1, 5))
def test_arrays_of_different_lengths_are_a_value_error_naming_both(xy, extra):
    x, y = xy
    longer = np.concatenate([y, y[:1].repeat(extra)])
    for args in [(x, longer), (np.concatenate([x, x[:1].repeat(extra, 0)]), y)]:
        with pytest.raises(ValueError, match="same number of examples") as err:
            from_arrays(*args)
        assert f"has {len(args[0])}" in str(err.value) and f"has {len(args[1])}" in str(err.value)
    with pytest.raises(ValueError, match=r"^train=\(x, y\): x and y must hold the same number"):
        as_source((x, longer), "train")


@given(st.sampled_from(DTYPES), st.booleans())
def test_a_0_d_array_is_a_value_error(dtype, as_x):
    scalar, ok = np.zeros((), dtype), np.zeros(3, dtype)
    name = "x" if as_x else "y"
    with pytest.raises(ValueError, match=f"{name} must have a leading axis of examples"):
        from_arrays(*((scalar, ok) if as_x else (ok, scalar)))


not_numbers = st.sampled_from(
    [
        np.array([object(), 1], dtype=object),
        np.array(["a", "bc"]),
        np.array([b"a", b"b"]),
        np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"),
    ]
)


@given(not_numbers, st.booleans())
def test_arrays_that_hold_no_numbers_are_a_type_error(bad, as_x):
    ok = np.zeros(len(bad), np.float32)
    name = "x" if as_x else "y"
    with pytest.raises(TypeError, match=f"{name} must be an array of numbers"):
        from_arrays(*((bad, ok) if as_x else (ok, bad)))


@given(
    st.one_of(
        st.lists(st.integers(), min_size=1, max_size=3),
        st.integers(),
        st.floats(),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
        st.none(),
    )
)
def test_what_is_not_an_array_is_a_type_error(value):
    with pytest.raises(TypeError, match="x must be a NumPy or JAX array"):
        from_arrays(value, np.zeros(3))


# -- jdl.data.batches ---------------------------------------------------------------------


@given(datasets(max_examples=30), st.data(), seeds, st.booleans())
def test_batches_without_drop_remainder_yield_every_example_once_per_epoch(xy, data, seed, shuf):
    x, y = xy
    n = len(x)
    batch_size = data.draw(st.integers(1, n + 3))
    out = list(batches(from_arrays(x, y), batch_size, shuffle=shuf, seed=seed, num_epochs=2,
                       drop_remainder=False))  # fmt: skip
    per_epoch = math.ceil(n / batch_size)
    assert len(out) == 2 * per_epoch
    for e in range(2):
        epoch = out[e * per_epoch : (e + 1) * per_epoch]
        assert [len(b["y"]) for b in epoch[:-1]] == [batch_size] * (per_epoch - 1)
        assert all(b["x"].dtype == x.dtype for b in epoch)
        ids = np.concatenate([_ids(b) for b in epoch])
        np.testing.assert_array_equal(ids, epoch_order(n, seed, e) if shuf else np.arange(n))


@given(datasets(max_examples=30), st.data(), seeds, st.sampled_from([1, 2, 4]))
def test_the_shards_of_a_global_batch_stack_back_into_it(xy, data, seed, shards):
    x, y = xy
    n = len(x)
    batch_size = shards * data.draw(st.integers(1, max(1, n // shards)))
    drop = data.draw(st.booleans()) and batch_size <= n
    source = from_arrays(x, y)

    def run(**kw):
        return [_ids(b) for b in batches(source, batch_size, seed=seed, drop_remainder=drop, **kw)]

    whole = run(shard_index=0, shard_count=1)
    parts = [run(shard_index=i, shard_count=shards) for i in range(shards)]
    assert all(len(p) == len(whole) for p in parts)
    for step, batch in enumerate(whole):
        sizes = [len(p[step]) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        np.testing.assert_array_equal(np.concatenate([p[step] for p in parts]), batch)


@given(st.integers(1, 60), seeds, st.integers(0, 5))
def test_epoch_order_is_a_permutation_that_depends_on_seed_and_epoch(n, seed, epoch):
    order = epoch_order(n, seed, epoch)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(order, epoch_order(n, seed, epoch))
    if n >= 8:  # 8! orders: three draws that all coincide would mean a seed is ignored
        others = [epoch_order(n, seed + 1, epoch), epoch_order(n, seed, epoch + 1)]
        assert all(not np.array_equal(order, other) for other in others)


# -- the training loop's feed (jdl.train.feed) ---------------------------------------------------


def _as_list(x, y) -> list[dict[str, np.ndarray]]:
    """A source that is neither in memory nor arrays: a list of example dicts."""
    return [{"x": x[i], "y": y[i]} for i in range(len(x))]


@given(datasets(), st.data(), seeds, st.integers(0, 4), st.booleans())
def test_an_epoch_is_full_batches_of_distinct_examples_in_the_epoch_order(
    xy, data, seed, epoch, shuffle
):
    x, y = xy
    n = len(x)
    batch_size = data.draw(st.integers(1, n))
    got = {}
    for kind, source in [("arrays", from_arrays(x, y)), ("list", _as_list(x, y))]:
        f = feed._make_feed(source)
        out = list(feed._epoch_batches(f, batch_size, seed=seed, epoch=epoch, shuffle=shuffle))
        assert len(out) == n // batch_size, kind
        assert all(b["x"].shape == (batch_size, *x.shape[1:]) for b in out), kind
        assert all(b["x"].dtype == x.dtype and b["y"].dtype == y.dtype for b in out), kind
        ids = np.concatenate([_ids(b) for b in out]) if out else np.zeros(0, int)
        order = epoch_order(n, seed, epoch) if shuffle else np.arange(n)
        np.testing.assert_array_equal(ids, order[: len(ids)])  # distinct: a permutation's prefix
        skip = data.draw(st.integers(0, len(out)))
        rest = feed._epoch_batches(
            f, batch_size, seed=seed, epoch=epoch, shuffle=shuffle, skip=skip
        )
        assert [list(b["y"]) for b in rest] == [list(b["y"]) for b in out[skip:]], kind
        got[kind] = ids
    np.testing.assert_array_equal(got["arrays"], got["list"])
    if batch_size * (n // batch_size) == n:  # no remainder: every example exactly once
        np.testing.assert_array_equal(np.sort(got["arrays"]), np.arange(n))


@given(datasets(max_examples=20), st.data(), seeds, st.booleans())
def test_a_streamed_epoch_is_full_batches_of_distinct_examples(xy, data, seed, shuffle):
    x, y = xy
    n = len(x)
    batch_size = data.draw(st.integers(1, n))
    with mock.patch.object(feed, "_IN_MEMORY_BYTES", 0):  # as if the source were large
        f = feed._make_feed(_as_list(x, y))
    assert not isinstance(f, feed._ArrayFeed)

    def epoch(e):
        out = list(feed._epoch_batches(f, batch_size, seed=seed, epoch=e, shuffle=shuffle))
        assert len(out) == n // batch_size
        assert all(b["x"].shape == (batch_size, *x.shape[1:]) for b in out)
        assert all(b["x"].dtype == x.dtype for b in out)
        return np.concatenate([_ids(b) for b in out])

    ids = epoch(1)
    assert len(set(ids.tolist())) == len(ids)
    np.testing.assert_array_equal(ids, epoch(1))  # a function of (seed, epoch) alone
    if not shuffle:
        np.testing.assert_array_equal(ids, np.arange(len(ids)))


@given(datasets(), st.data())
def test_eval_batches_pad_the_last_batch_and_mask_every_example_exactly_once(xy, data):
    x, y = xy
    n = len(x)
    batch_size = data.draw(st.integers(1, n + 5))
    for source in [from_arrays(x, y), _as_list(x, y)]:
        out = list(feed._eval_batches(feed._make_feed(source), batch_size))
        assert len(out) == math.ceil(n / batch_size)
        assert all(len(b["mask"]) == batch_size == len(b["x"]) for b in out)
        assert all(b["mask"].dtype == np.bool_ and b["x"].dtype == x.dtype for b in out)
        assert sum(int(b["mask"].sum()) for b in out) == n
        real = np.concatenate([_ids(b)[b["mask"]] for b in out])
        np.testing.assert_array_equal(real, np.arange(n))
        pad = np.concatenate([_ids(b)[~b["mask"]] for b in out])
        assert len(pad) == len(out) * batch_size - n and not pad.any()  # copies of example 0
        assert all(b["mask"][: b["mask"].sum()].all() for b in out)  # padding comes last


# -- end to end: jdl.evaluate counts every example once, whatever the batch size -------------

_MODEL = MLP(widths=(), num_outputs=3)
_VARIABLES = _MODEL.init(jax.random.key(0), np.zeros((1, 4), np.float32), train=False)


@settings(max_examples=8)  # each batch size is one compilation of the evaluation step
@given(st.integers(1, 20), st.sampled_from([1, 3, 32]), seeds)
def test_evaluate_equals_the_loss_and_accuracy_of_the_whole_set_for_any_batch_size(
    n, batch_size, seed
):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    got = jdl.evaluate(_MODEL, _VARIABLES, (x, y), metrics=["accuracy"], batch_size=batch_size)
    logits = _MODEL.apply(_VARIABLES, x, train=False)
    np.testing.assert_allclose(got["loss"], float(losses.cross_entropy(logits, y)), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], np.mean(np.argmax(logits, -1) == y), rtol=1e-6)
