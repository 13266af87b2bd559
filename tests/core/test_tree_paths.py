"""jdl._core.tree: the one home of "a/b/c" variable paths and shape comparison."""

import jax.numpy as jnp
import optax
import pytest

from jdl._core.tree import (
    compare_shapes,
    flatten,
    get_path,
    key_name,
    leaf_paths,
    own_leaves,
    path_str,
    unflatten,
)

VARIABLES = {
    "params": {"block": {"scale": 1.0, "Dense_0": {"kernel": 2.0, "bias": 3.0}}, "head": {}},
    "batch_stats": {"bn": {"mean": 4.0}},
}


def test_flatten_and_unflatten_round_trip():
    flat = flatten(VARIABLES)
    assert flat == {
        "params/block/scale": 1.0,
        "params/block/Dense_0/kernel": 2.0,
        "params/block/Dense_0/bias": 3.0,
        "batch_stats/bn/mean": 4.0,
    }
    # The empty "head" leaves no trace.
    assert unflatten(flat) == {
        "params": {"block": {"scale": 1.0, "Dense_0": {"kernel": 2.0, "bias": 3.0}}},
        "batch_stats": {"bn": {"mean": 4.0}},
    }
    assert flatten({"a": 1}, prefix="p") == {"p/a": 1}


def test_unflatten_refuses_clashing_paths():
    with pytest.raises(ValueError, match="runs through a leaf"):
        unflatten({"a": 1, "a/b": 2})
    with pytest.raises(ValueError, match="appears twice"):
        unflatten({"a/b": 1, "a": 2})


def test_get_path_and_own_leaves():
    params = VARIABLES["params"]
    assert get_path(params, "block/Dense_0/kernel") == 2.0
    assert get_path(params, "block/missing") is None
    assert get_path(params, "block/scale/deeper") is None  # runs through a leaf
    assert own_leaves(params, "block") == {"scale": 1.0}
    assert own_leaves(params, "block/Dense_0") == {"kernel": 2.0, "bias": 3.0}
    assert own_leaves(params, "nowhere") == {}
    assert own_leaves(params, "block/scale") == {}  # a leaf owns nothing


def test_leaf_paths_names_every_leaf_of_any_pytree():
    params = {"w": jnp.ones(2)}
    tree = {"step": 0, "params": params, "opt_state": optax.adam(1e-3).init(params)}
    paths = leaf_paths(tree)
    assert "params/w" in paths and "step" in paths
    # optax states are tuples of named tuples: indices and field names.
    assert "opt_state/0/mu/w" in paths and "opt_state/0/count" in paths
    assert path_str(()) == ""
    assert key_name("plain") == "plain"


def test_compare_shapes_lists_missing_unexpected_and_mismatched():
    wanted = {"params/b": (3,), "params/a": (2, 2), "batch_stats/m": (4,)}
    found = {"params/a": [2, 3], "params/z": (1,), "batch_stats/m": (4,)}
    missing, unexpected, mismatched = compare_shapes(wanted, found)
    assert missing == ["params/b"]
    assert unexpected == ["params/z"]
    assert mismatched == [("params/a", (2, 2), (2, 3))]
    assert compare_shapes(wanted, wanted) == ([], [], [])
    # A custom order (checkpoint messages list params first).
    missing, _, _ = compare_shapes(
        {"params/x": (), "batch_stats/y": ()}, {}, key=lambda k: (not k.startswith("params"), k)
    )
    assert missing == ["params/x", "batch_stats/y"]
