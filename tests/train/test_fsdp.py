"""FSDP sharding rules (jdl.train.sharding) and strategy="fsdp" on one device (a 1x1 mesh)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TinyMLP, blobs
from jax.sharding import PartitionSpec as P

import jdl
from jdl.train import (
    create_state,
    fsdp_mesh,
    fsdp_spec,
    optimizer,
    parallelize,
    per_device_bytes,
    shard_state,
    state_shardings,
    train_step,
)


def test_fsdp_spec_picks_the_largest_divisible_axis():
    assert fsdp_spec((64, 256), 8, min_size=0) == P(None, "fsdp")
    assert fsdp_spec((256, 64), 8, min_size=0) == P("fsdp")  # no trailing None
    assert fsdp_spec((3, 3, 16, 64), 8, min_size=0) == P(None, None, None, "fsdp")
    assert fsdp_spec((12, 10), 4, min_size=0) == P("fsdp")  # 10 is not divisible
    assert fsdp_spec((64, 64), 8, min_size=0) == P("fsdp")  # ties: the first
    assert fsdp_spec((7, 9), 8, min_size=0) == P()  # nothing divisible: replicated
    assert fsdp_spec((64, 255), 8) == P()  # below the size threshold: replicated
    assert fsdp_spec((64, 256), 8) == P(None, "fsdp")  # 2**14 elements: sharded
    assert fsdp_spec((64, 256), 1, min_size=0) == P()  # one device: nothing to split
    assert fsdp_spec((), 8, min_size=0) == P()


def test_user_rules_come_first_and_reach_the_optimizer_state():
    state = create_state(TinyMLP(), optimizer("adam", 1e-3), blobs(8)[:8], seed=0)
    mesh = fsdp_mesh()
    rules = [
        (r"Dense_0/kernel", P(None, "fsdp")),
        (r"Dense_0/.*", P("data")),
        (r"kernel", P(None, None)),
    ]
    specs = {
        k: s.spec for k, s in jdl._core.tree.leaf_paths(state_shardings(state, mesh, rules)).items()
    }
    assert specs["params/Dense_0/kernel"] == P(None, "fsdp")
    assert specs["opt_state/inner_state/0/mu/Dense_0/kernel"] == P(None, "fsdp")  # same path tail
    assert specs["params/Dense_0/bias"] == P("data")
    assert specs["params/Dense_1/kernel"] == P()  # trailing Nones dropped, as XLA does
    assert specs["step"] == P()


@pytest.mark.parametrize(
    ("rules", "error", "match"),
    [
        ([("kernel",)], TypeError, r"\(regex string, jax.sharding.PartitionSpec\) pairs"),
        ([("kernel", "fsdp")], TypeError, r"pairs; got \('kernel', 'fsdp'\)"),
        ([("[", P())], ValueError, r"Invalid regex '\['"),
        ([("Dense_0/bias", P(None, "fsdp"))], ValueError, r"\(2 axes\) to an array of shape"),
        ([("kernel", P("model"))], ValueError, r"names mesh axes \['model'\]"),
    ],
)
def test_bad_rules_are_refused_naming_what_was_expected(rules, error, match):
    state = create_state(TinyMLP(), optimizer("adam", 1e-3), blobs(8)[:8], seed=0)
    with pytest.raises(error, match=match):
        state_shardings(state, fsdp_mesh(), rules)


def test_bad_rules_are_refused_when_the_step_is_built():
    with pytest.raises(TypeError, match="PartitionSpec"):
        parallelize(functools.partial(train_step, loss_fn="mse"), "fsdp", rules=[("a", 1)])


def test_fsdp_mesh_shape_is_checked():
    n = jax.device_count()
    assert fsdp_mesh().shape == {"data": 1, "fsdp": n}
    with pytest.raises(ValueError, match=rf"multiplying to the {n} devices; got \(2, {n}\)"):
        fsdp_mesh((2, n))
    with pytest.raises(ValueError, match=r'axes \("data", "fsdp"\)|axes \(.data., .fsdp.\)'):
        parallelize(
            functools.partial(train_step, loss_fn="mse"), "fsdp", mesh=jdl.train.data_mesh()
        )


def test_per_device_bytes_on_one_device_is_the_whole_state():
    state = create_state(TinyMLP(), optimizer("adam", 1e-3), blobs(8)[:8], seed=0)
    abstract = jax.eval_shape(lambda: state.arrays)
    total = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(abstract))
    assert per_device_bytes(abstract, state_shardings(abstract, fsdp_mesh())) == total


def test_shard_state_keeps_placed_arrays():
    state = create_state(TinyMLP(), optimizer("adam", 1e-3), blobs(8)[:8], seed=0)
    placed = shard_state(state, fsdp_mesh())
    again = shard_state(placed, fsdp_mesh())
    assert again.params["Dense_0"]["kernel"] is placed.params["Dense_0"]["kernel"]
    np.testing.assert_array_equal(
        placed.params["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"]
    )


def test_fit_fsdp_on_one_device_equals_jit():
    kwargs = dict(
        batch_size=16, loss="cross_entropy", optimizer=("adam", 1e-2), epochs=2,
        validation=blobs(40, seed=1), verbose=0,
    )  # fmt: skip
    ref = jdl.fit(TinyMLP(batch_norm=True), blobs(96), strategy="jit", **kwargs)
    got = jdl.fit(TinyMLP(batch_norm=True), blobs(96), strategy="fsdp", **kwargs)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        got.state.variables,
        ref.state.variables,
    )
    assert got.metrics["val_loss"] == pytest.approx(ref.metrics["val_loss"], rel=1e-5)
    sums = jdl.train.evaluate(
        TinyMLP(batch_norm=True), got.state, blobs(40, seed=1), strategy="fsdp"
    )
    assert sums["loss"] == pytest.approx(got.metrics["val_loss"][-1], rel=1e-5)
    assert jnp.shape(
        jdl.train.predict(TinyMLP(batch_norm=True), got.state, blobs(5), strategy="fsdp")
    ) == (5, 3)


def test_fit_refuses_sharding_rules_for_another_strategy():
    with pytest.raises(ValueError, match='sharding_rules place parameters for strategy="fsdp"'):
        jdl.fit(
            jdl.nn.MLP(widths=(8,), num_outputs=3), blobs(64), batch_size=16, epochs=1,
            loss="cross_entropy", optimizer=("sgd", 0.1), verbose=0, strategy="jit",
            sharding_rules=[(r"kernel", P())],
        )  # fmt: skip
