"""strategy="fsdp" on 8 simulated devices: the same parameters as jit, sharded states, and
checkpoints of sharded states (resume, restore onto another mesh or one device)."""

import functools

import flax.linen as nn
import jax
import numpy as np
import pytest
from conftest import blobs
from jax.sharding import PartitionSpec as P

import jdl
from jdl._core.tree import leaf_paths
from jdl.data import from_arrays
from jdl.train import (
    create_state,
    fsdp_mesh,
    optimizer,
    parallelize,
    restore_state,
    shard_state,
    train_step,
)
from jdl.train.callbacks import Checkpoint

pytestmark = pytest.mark.multidevice


class WideMLP(nn.Module):
    """Dense(256) on 64 features (16,384 weights: sharded) -> BatchNorm -> Dense(3)."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(256)(x)))
        return nn.Dense(3)(x)


def _images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32) + y[:, None, None, None]
    return from_arrays(x, y.astype(np.int64))


CASES = {
    "mlp_batchnorm": (WideMLP, lambda: blobs(128, features=64), 32),
    "cnn": (
        lambda: jdl.nn.CNN(features=(32, 64), num_outputs=3, ndim=2, kernel_size=3),
        lambda: _images(64, 8),
        16,
    ),
    "cifar_resnet8": (
        lambda: jdl.nn.CifarResNet(depth=8, num_outputs=3),
        lambda: _images(32, 16),
        16,
    ),
}


def _fit(case, strategy, **kwargs):
    make_model, data, batch_size = CASES[case]
    return jdl.fit(
        make_model(), data(), batch_size=batch_size, loss="cross_entropy",
        optimizer=optimizer("momentum", 0.05), epochs=kwargs.pop("epochs", 2),
        validation=data(), verbose=0, strategy=strategy, **kwargs,
    )  # fmt: skip


def _assert_close(a, b, tol=1e-4):
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol),
        a,
        b,
    )


def _sharded_paths(tree):
    return [
        k
        for k, x in leaf_paths(tree).items()
        if "fsdp" in jax.tree_util.tree_leaves(tuple(x.sharding.spec))
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_fsdp_equals_jit_with_sharded_parameters(case):
    ref = _fit(case, "jit")
    got = _fit(case, "fsdp")
    sharded = _sharded_paths(got.state.arrays)
    assert any(k.startswith("params/") for k in sharded), sharded
    assert any(k.startswith("opt_state/") for k in sharded), sharded  # momentum too
    for path in sharded:  # each device holds an eighth
        x = leaf_paths(got.state.arrays)[path]
        assert x.addressable_shards[0].data.size * 8 == x.size
    _assert_close(got.state.variables, ref.state.variables)
    np.testing.assert_allclose(got.metrics["val_loss"], ref.metrics["val_loss"], rtol=1e-4)
    sums = jdl.train.evaluate(CASES[case][0](), got.state, CASES[case][1](), strategy="fsdp")
    assert sums["loss"] == pytest.approx(got.metrics["val_loss"][-1], rel=1e-5)


def test_mesh_shape_and_user_rules():
    src = blobs(64, features=64)
    batches = [{"x": src.x[i : i + 32], "y": src.y[i : i + 32]} for i in (0, 32)]
    loss = functools.partial(train_step, loss_fn="cross_entropy")
    results = {}
    for name, kwargs in {
        "jit": {},
        "2x4": {"mesh": fsdp_mesh((2, 4))},
        "rules": {"rules": [(r"Dense_0/kernel", P()), (r"Dense_1/kernel", P(None, None))],
                  "min_size": 0},
    }.items():  # fmt: skip
        step = parallelize(loss, "jit" if name == "jit" else "fsdp", **kwargs)
        state = create_state(WideMLP(), optimizer("momentum", 0.05), batches[0], seed=0)
        for i in range(4):
            state, _ = step(state, batches[i % 2])
        assert name == "jit" or step.compiled._cache_size() == 1, name  # one compilation
        results[name] = step.unreplicate(state)
    assert results["2x4"].params["Dense_0"]["kernel"].sharding.spec == P(None, "fsdp")
    assert results["2x4"].params["Dense_0"]["kernel"].addressable_shards[0].data.shape == (64, 64)
    rules = leaf_paths(results["rules"].arrays)
    assert rules["params/Dense_0/kernel"].is_fully_replicated  # the user rule won
    assert rules["params/Dense_0/bias"].sharding.spec == P("fsdp")  # min_size=0: sharded
    for name in ("2x4", "rules"):
        _assert_close(results[name].variables, results["jit"].variables)


def test_checkpoint_resume_of_a_sharded_state_equals_the_uninterrupted_run(tmp_path):
    whole = _fit("mlp_batchnorm", "fsdp", epochs=3)
    _fit("mlp_batchnorm", "fsdp", epochs=2, callbacks=[Checkpoint(tmp_path / "ck")])
    resumed = _fit(
        "mlp_batchnorm", "fsdp", epochs=3, callbacks=[Checkpoint(tmp_path / "ck")], resume=True
    )
    assert resumed.epochs == whole.epochs
    _assert_close(resumed.state.arrays, whole.state.arrays, 1e-6)
    np.testing.assert_allclose(resumed.metrics["loss"], whole.metrics["loss"], rtol=1e-6)


def test_sharded_checkpoint_restores_onto_one_device_and_another_mesh(tmp_path):
    h = _fit("mlp_batchnorm", "fsdp", epochs=1, callbacks=[Checkpoint(tmp_path / "ck")])
    kernel = h.state.params["Dense_0"]["kernel"]
    assert kernel.sharding.spec == P(None, "fsdp")
    fresh = create_state(WideMLP(), optimizer("momentum", 0.05), blobs(8, features=64)[:8], seed=1)
    plain, _ = restore_state(tmp_path / "ck", fresh)
    assert plain.params["Dense_0"]["kernel"].sharding == fresh.params["Dense_0"]["kernel"].sharding
    _assert_close(plain.arrays, h.state.arrays, 0)
    other = shard_state(fresh, fsdp_mesh((4, 2)))
    moved, _ = restore_state(tmp_path / "ck", other)
    restored = moved.params["Dense_0"]["kernel"]
    assert restored.sharding.mesh.shape == {"data": 4, "fsdp": 2}
    assert restored.addressable_shards[0].data.shape == (64, 128)
    _assert_close(moved.arrays, h.state.arrays, 0)


def test_fit_takes_the_mesh_and_the_sharding_rules():
    rules = [(r"Dense_0/kernel", P("fsdp"))]  # the FSDP rule alone would shard axis 1
    got = _fit("mlp_batchnorm", "fsdp", mesh=fsdp_mesh((2, 4)), sharding_rules=rules)
    kernel = got.state.params["Dense_0"]["kernel"]
    assert kernel.sharding.spec == P("fsdp")
    assert dict(kernel.sharding.mesh.shape) == {"data": 2, "fsdp": 4}
    _assert_close(got.state.variables, _fit("mlp_batchnorm", "jit").state.variables)
