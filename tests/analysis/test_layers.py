"""Layer discovery, forward order, any-model support and clear errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import analysis
from jdl.analysis._layers import discover_layers, natural_key
from jdl.nn import CNN, MLP, CifarResNet, RNNClassifier


def _init(model, x):
    return model.init(jax.random.key(0), x[:1], train=False)


def test_natural_key_orders_numbers_numerically():
    names = ["Dense_10", "Dense_2", "Dense_1", "head"]
    assert sorted(names, key=natural_key) == ["Dense_1", "Dense_2", "Dense_10", "head"]


def test_mlp_layers_in_forward_order_not_string_order():
    model = MLP(widths=(4,) * 12, num_outputs=3, batch_norm=True)
    x = jnp.ones((5, 6))
    names = list(
        analysis.gradient_norms(
            model, _init(model, x), {"x": x, "y": jnp.zeros(5, int)}, "cross_entropy"
        )
    )
    expected = [n for i in range(12) for n in (f"Dense_{i}", f"BatchNorm_{i}")] + ["head"]
    assert names == expected


def test_cifar_resnet_nested_paths_and_batch_stats():
    model = CifarResNet(depth=8, num_outputs=4)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    v = _init(model, x)
    norms = analysis.gradient_norms(model, v, {"x": x, "y": jnp.arange(4)}, "cross_entropy")
    names = list(norms)
    assert names[:3] == ["conv1", "bn1", "layer1_0/conv1"]
    assert names.index("layer2_0/conv1") < names.index("layer3_0/conv1") < names.index("fc")
    assert names[-1] == "fc"
    assert all(np.isfinite(list(norms.values())))
    report = analysis.gradient_flow(
        model, v, {"x": x, "y": jnp.arange(4)}, "cross_entropy", activation="relu"
    )
    assert [r.name for r in report.layers] == names


def test_cnn_and_rnn_models():
    cnn = CNN(features=(4, 4), ndim=1, num_outputs=3)
    x = jax.random.normal(jax.random.key(0), (6, 20, 1))
    report = analysis.gradient_flow(
        cnn, _init(cnn, x), {"x": x, "y": jnp.arange(6) % 3}, "cross_entropy"
    )
    assert [r.name for r in report.layers][0] == "Conv_0"
    assert all(r.verdict in analysis.VERDICTS for r in report.layers)

    rnn = RNNClassifier(num_outputs=3, cell="gru", hidden_size=5)
    xs = jax.random.normal(jax.random.key(0), (4, 7, 2))
    v = _init(rnn, xs)
    report = analysis.gradient_flow(rnn, v, {"x": xs, "y": jnp.arange(4) % 3}, "cross_entropy")
    names = [r.name for r in report.layers]
    assert names[-1] == "head"
    assert any(name.startswith("rnn_0/cell") for name in names)
    assert all(r.grad_norm > 0 for r in report.layers)


class UserNet(nn.Module):
    """A user module with nested submodules and no ``train`` argument."""

    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(8, name="inp")(x))
        for i in range(11):
            x = nn.tanh(nn.Dense(8, name=f"hidden_{i}")(x))
        return nn.Dense(2, name="out")(x)


def test_user_flax_module():
    model = UserNet()
    x = jax.random.normal(jax.random.key(0), (8, 3))
    v = model.init(jax.random.key(0), x)
    batch = {"x": x, "y": jnp.arange(8) % 2}
    norms = analysis.gradient_norms(model, v, batch, "cross_entropy")
    assert list(norms) == ["inp"] + [f"hidden_{i}" for i in range(11)] + ["out"]
    # dLoss/dW from analysis equals jax.grad of the same loss.
    grads = jax.grad(
        lambda p: analysis._layers.get_loss("cross_entropy")(
            model.apply({"params": p}, x), batch["y"]
        )
    )(v["params"])
    want = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads["hidden_10"]))))
    assert norms["hidden_10"] == pytest.approx(want, rel=1e-5)


def test_activation_gradients_match_perturbation_by_hand():
    """dLoss/dO of the last hidden layer equals W_head-backpropagated logits gradient."""
    model = MLP(widths=(5,), num_outputs=3, activation="identity")
    x = jax.random.normal(jax.random.key(0), (4, 2))
    v = _init(model, x)
    y = jnp.arange(4) % 3
    loss = analysis._layers.get_loss("cross_entropy")
    out = model.apply(v, x, train=False)
    dlogits = jax.grad(lambda o: loss(o, y))(out)
    d_hidden = dlogits @ v["params"]["head"]["kernel"].T
    grads = analysis.layer_gradients(model, v, {"x": x, "y": y}, "cross_entropy")
    rms = float(jnp.sqrt(jnp.mean(d_hidden**2)))
    assert grads["Dense_0"].activation_grad_rms == pytest.approx(rms, rel=1e-5)
    assert grads["head"].activation_grad_rms == pytest.approx(
        float(jnp.sqrt(jnp.mean(dlogits**2))), rel=1e-5
    )


def test_update_ratio_for_an_optimizer():
    import optax

    model = MLP(widths=(8,), num_outputs=2)
    x = jax.random.normal(jax.random.key(0), (16, 4))
    v = _init(model, x)
    batch = {"x": x, "y": jnp.arange(16) % 2}
    g = analysis.layer_gradients(model, v, batch, "cross_entropy", optimizer=optax.sgd(0.1))
    for r in g.values():
        assert r.update_norm == pytest.approx(0.1 * r.grad_norm, rel=1e-5)
        assert r.update_ratio == pytest.approx(r.update_norm / r.param_norm, rel=1e-6)
    nan = analysis.layer_gradients(model, v, batch, "cross_entropy")["Dense_0"].update_ratio
    assert np.isnan(nan)


def test_discover_layers_is_complete():
    model = MLP(widths=(3, 3), num_outputs=2)
    x = jnp.ones((2, 4))
    layers = discover_layers(model, _init(model, x), x)
    assert [(layer.name, layer.kind, layer.is_weighted) for layer in layers] == [
        ("Dense_0", "Dense", True),
        ("Dense_1", "Dense", True),
        ("head", "Dense", True),
    ]


# ---------------------------------------------------------------- bad input


@pytest.fixture
def small():
    model = MLP(widths=(4,), num_outputs=3)
    x = jnp.ones((5, 6))
    return model, _init(model, x), {"x": x, "y": jnp.zeros(5, int)}


def test_unknown_layer_path(small):
    model, v, batch = small
    with pytest.raises(KeyError, match=r"Unknown layer path.*'Dense_7'.*Dense_0"):
        analysis.gradient_flow(model, v, batch, "cross_entropy", layers=["Dense_7"])


def test_batch_that_does_not_fit(small):
    model, v, _ = small
    with pytest.raises(ValueError, match="6 features"):
        analysis.gradient_flow(
            model, v, {"x": jnp.ones((5, 9)), "y": jnp.zeros(5, int)}, "cross_entropy"
        )
    user = UserNet()
    uv = user.init(jax.random.key(0), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="does not fit the model"):
        analysis.gradient_norms(
            user, uv, {"x": jnp.ones((5, 9)), "y": jnp.zeros(5, int)}, "cross_entropy"
        )


def test_non_scalar_loss(small):
    model, v, batch = small
    with pytest.raises(ValueError, match="must return a scalar"):
        analysis.gradient_norms(model, v, batch, lambda out, y: out.sum(axis=1))


def test_missing_targets_and_bad_variables(small):
    model, v, batch = small
    with pytest.raises(KeyError, match='"y"'):
        analysis.gradient_flow(model, v, {"x": batch["x"]}, "cross_entropy")
    with pytest.raises(TypeError, match='"params"'):
        analysis.gradient_flow(model, v["params"], batch, "cross_entropy")
    with pytest.raises(ValueError, match="Unknown loss"):
        analysis.gradient_flow(model, v, batch, "crossentropy")
