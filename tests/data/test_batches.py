"""jdl.data.batches: shuffling, epochs, sharding across processes, transforms, errors."""

import itertools

import numpy as np
import pytest

import jdl.data as jd


def id_source(n: int) -> list[dict[str, np.ndarray]]:
    """Example ``i`` is ``{"x": [i, -i], "y": i}``: batches reveal which examples they hold."""
    return [{"x": np.array([i, -i], np.float32), "y": np.int64(i)} for i in range(n)]


def ids(batches) -> list[list[int]]:
    return [b["y"].tolist() for b in batches]


def test_batch_shapes_and_contents():
    out = list(jd.batches(id_source(10), 4, seed=0))
    assert len(out) == 2  # 10 // 4, the remainder dropped
    for b in out:
        assert set(b) == {"x", "y"}
        assert b["x"].shape == (4, 2) and b["x"].dtype == np.float32
        assert b["y"].shape == (4,) and b["y"].dtype == np.int64
        np.testing.assert_array_equal(b["x"][:, 0], b["y"])  # rows stay together
    flat = sum(ids(out), [])
    assert len(set(flat)) == 8 and set(flat) <= set(range(10))


def test_without_shuffle_keeps_index_order():
    assert ids(jd.batches(id_source(7), 3, shuffle=False, drop_remainder=False)) == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]
    assert ids(jd.batches(id_source(7), 3, shuffle=False)) == [[0, 1, 2], [3, 4, 5]]


def test_keep_remainder_covers_each_epoch_exactly_once():
    out = ids(jd.batches(id_source(10), 4, num_epochs=3, drop_remainder=False, seed=5))
    assert [len(b) for b in out] == [4, 4, 2] * 3  # batches never mix epochs
    for epoch in range(3):
        assert sorted(sum(out[3 * epoch : 3 * epoch + 3], [])) == list(range(10))


def test_same_seed_same_order_different_seed_different_order():
    first = ids(jd.batches(id_source(50), 10, seed=3, num_epochs=2))
    assert ids(jd.batches(id_source(50), 10, seed=3, num_epochs=2)) == first
    assert ids(jd.batches(id_source(50), 10, seed=4, num_epochs=2)) != first
    assert sorted(sum(first[:5], [])) == list(range(50))
    assert sum(first[:5], []) != list(range(50))  # shuffled


def test_order_is_the_documented_epoch_permutation():
    out = ids(jd.batches(id_source(30), 10, seed=7, num_epochs=2))
    np.testing.assert_array_equal(sum(out[:3], []), jd.epoch_order(30, 7, 0))
    np.testing.assert_array_equal(sum(out[3:], []), jd.epoch_order(30, 7, 1))
    np.testing.assert_array_equal(jd.epoch_order(30, 7, 1), jd.epoch_order(30, 7, 1))


def test_threads_do_not_change_the_result():
    kwargs = {"seed": 4, "num_epochs": 3, "drop_remainder": False}
    reference = ids(jd.batches(id_source(25), 4, num_threads=0, **kwargs))
    assert ids(jd.batches(id_source(25), 4, num_threads=3, **kwargs)) == reference
    assert len(reference) == 3 * 7


def test_epochs_are_shuffled_differently():
    out = ids(jd.batches(id_source(50), 10, seed=0, num_epochs=3))
    epochs = [sum(out[5 * e : 5 * e + 5], []) for e in range(3)]
    assert all(sorted(e) == list(range(50)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]


def test_neighbouring_seeds_do_not_share_epochs():
    # grain reseeds epoch e with (seed + e); jdl hashes the seed first, so epoch 1 of
    # seed 0 is not epoch 0 of seed 1.
    seed0 = ids(jd.batches(id_source(40), 40, seed=0, num_epochs=2))
    seed1 = ids(jd.batches(id_source(40), 40, seed=1, num_epochs=1))
    assert seed0[1] != seed1[0]


def test_infinite_epochs():
    stream = jd.batches(id_source(10), 5, num_epochs=None, seed=2)
    out = ids(itertools.islice(stream, 11))
    assert len(out) == 11
    for epoch in range(5):
        assert sorted(out[2 * epoch] + out[2 * epoch + 1]) == list(range(10))


def test_two_shards_split_each_global_batch():
    source = id_source(23)
    full = ids(jd.batches(source, 6, seed=9, num_epochs=2, shard_index=0, shard_count=1))
    part0 = ids(jd.batches(source, 6, seed=9, num_epochs=2, shard_index=0, shard_count=2))
    part1 = ids(jd.batches(source, 6, seed=9, num_epochs=2, shard_index=1, shard_count=2))
    assert len(full) == len(part0) == len(part1) == 2 * (23 // 6)
    for whole, a, b in zip(full, part0, part1, strict=True):
        assert len(a) == len(b) == 3
        assert not set(a) & set(b)  # disjoint
        assert a + b == whole  # process 0 has the first half, process 1 the second


def test_partial_last_batch_is_split_near_evenly():
    source = id_source(11)  # batches of 8: one full, then 3 left over
    parts = [
        ids(
            jd.batches(source, 8, drop_remainder=False, shuffle=False, shard_index=i, shard_count=4)
        )
        for i in range(4)
    ]
    assert [[len(b) for b in p] for p in parts] == [[2, 0], [2, 1], [2, 1], [2, 1]]
    assert sum((p[1] for p in parts), []) == [8, 9, 10]
    empty = list(
        jd.batches(source, 8, drop_remainder=False, shuffle=False, shard_index=0, shard_count=4)
    )[1]
    assert empty["x"].shape == (0, 2) and empty["x"].dtype == np.float32
    assert empty["y"].shape == (0,) and empty["y"].dtype == np.int64


def test_default_shard_is_this_jax_process():
    import jax

    assert jax.process_count() == 1
    out = next(jd.batches(id_source(8), 8))
    assert sorted(out["y"].tolist()) == list(range(8))


def test_transform_is_applied_per_example():
    seen_shapes = []

    def transform(example):
        seen_shapes.append(example["x"].shape)
        return {"x": example["x"] * 2, "y": example["y"], "odd": example["y"] % 2}

    out = list(jd.batches(id_source(6), 3, shuffle=False, transform=transform))
    assert set(seen_shapes) == {(2,)}  # called on single examples, before batching
    np.testing.assert_array_equal(out[1]["x"][:, 0], [6, 8, 10])
    np.testing.assert_array_equal(out[1]["odd"], [1, 0, 1])


def test_batches_over_a_bundled_dataset():
    iris = jd.load("iris")
    out = list(jd.batches(iris, 32, seed=1))
    assert [b["x"].shape for b in out] == [(32, 4)] * 3
    assert out[0]["y"].dtype == np.int64
    arrays = jd.as_arrays(iris)
    order = jd.epoch_order(120, 1, 0)
    np.testing.assert_array_equal(out[1]["x"], arrays["x"][order[32:64]])
    np.testing.assert_array_equal(out[1]["y"], arrays["y"][order[32:64]])
    # A disk-backed source and a transform give the same examples.
    lazy = list(jd.batches(jd.load("iris", in_memory=False), 32, seed=1, transform=dict))
    for a, b in zip(out, lazy, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": -4}, ValueError, "batch_size must be >= 1, got -4"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer, got float"),
        ({"batch_size": True}, TypeError, "bool"),
        ({"batch_size": 11}, ValueError, "batch_size 11 is larger than the 10 examples"),
        ({"batch_size": 4, "num_epochs": 0}, ValueError, "num_epochs must be >= 1, got 0"),
        ({"batch_size": 4, "seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"batch_size": 4, "shard_count": 0}, ValueError, "shard_count must be >= 1, got 0"),
        (
            {"batch_size": 4, "shard_index": 2, "shard_count": 2},
            ValueError,
            r"shard_index must be in \[0, 2\) for shard_count=2, got 2",
        ),
        ({"batch_size": 4, "shard_index": -1, "shard_count": 2}, ValueError, "shard_index"),
        (
            {"batch_size": 5, "shard_index": 0, "shard_count": 2},
            ValueError,
            "global batch_size 5 must be divisible by shard_count 2",
        ),
        ({"batch_size": 4, "transform": 3}, TypeError, "transform must be callable"),
        ({"batch_size": 4, "num_threads": -1}, ValueError, "num_threads must be >= 0, got -1"),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        jd.batches(id_source(10), **kwargs)  # raised at the call, not at the first batch


def test_large_batch_allowed_when_keeping_the_remainder():
    assert ids(jd.batches(id_source(3), 8, shuffle=False, drop_remainder=False)) == [[0, 1, 2]]


def test_source_errors():
    with pytest.raises(ValueError, match="source is empty"):
        jd.batches([], 1)
    with pytest.raises(TypeError, match="random-access"):
        jd.batches(iter(id_source(3)), 1)
    bad = jd.batches(id_source(4), 2, transform=lambda ex: ex["x"])
    with pytest.raises(TypeError, match="transform must return a dict"):
        next(bad)
