"""jdl.nn.get_model / list_models / register_model: every named constructor, by name."""

import jax
import jax.numpy as jnp
import pytest

from jdl import nn

NAMED = {
    *(f"vgg{d}" for d in (11, 13, 16, 19)),
    *(f"vgg{d}_bn" for d in (11, 13, 16, 19)),
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
    *(f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110)),
    "mnist1d_cnn",
    "mnist1d_gru",
    "mnist1d_mlp",
    "mnist1d_logistic",
}


def tiny_input(model):
    """The smallest batch each family of models takes (VGG: 2^5 for its five pools)."""
    if isinstance(model, (nn.MLP, nn.CNN, nn.RNNClassifier)):
        return jax.ShapeDtypeStruct((2, 40), jnp.float32)
    side = 32 if isinstance(model, nn.VGG) else 16
    return jax.ShapeDtypeStruct((2, side, side, 3), jnp.float32)


def test_every_named_constructor_is_listed_sorted():
    names = nn.list_models()
    assert NAMED <= set(names) and names == sorted(names)
    resnets = ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert nn.list_models("resnet*") == resnets


@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_listed_name_builds_and_inits_on_a_tiny_input(name):
    model = nn.get_model(name, num_outputs=3)
    x = tiny_input(model)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), shapes, x)
    assert out.shape == (2, 3)
    assert shapes["params"][type(model).head_name]["bias"].shape == (3,)


def test_names_build_the_constructors_models():
    assert nn.get_model("resnet50") == nn.resnet50()
    assert nn.get_model("vgg16") == nn.vgg16()
    assert nn.get_model("vgg13_bn") == nn.vgg13(batch_norm=True)
    assert nn.get_model("cifar_resnet56") == nn.CifarResNet(depth=56)
    assert nn.get_model("mnist1d_logistic") == nn.MLP(widths=(), num_outputs=10)
    cnn = nn.get_model("mnist1d_cnn")
    assert (cnn.features, cnn.kernel_size, cnn.strides, cnn.padding, cnn.ndim) == (
        (25, 25, 25),
        (5, 3, 3),
        2,
        1,
        1,
    )
    gru = nn.get_model("mnist1d_gru")
    assert (gru.cell, gru.hidden_size, gru.bidirectional) == ("gru", 6, True)
    assert gru.readout == "sequence"


def test_paper_parameter_counts():
    counts = {}
    for name in ("mnist1d_logistic", "mnist1d_mlp", "mnist1d_cnn"):
        model = nn.get_model(name)
        x = jax.ShapeDtypeStruct((1, 40), jnp.float32)
        counts[name] = nn.count_params(
            jax.eval_shape(lambda x, m=model: m.init(jax.random.key(0), x, train=False), x)
        )
    assert counts == {"mnist1d_logistic": 410, "mnist1d_mlp": 15_210, "mnist1d_cnn": 5_210}


def test_overrides_set_fields():
    model = nn.get_model("resnet18", num_outputs=7, bn_momentum=0.99, dtype=jnp.bfloat16)
    assert (model.num_outputs, model.bn_momentum, model.dtype) == (7, 0.99, jnp.bfloat16)
    assert nn.get_model("cifar_resnet20", plain=True).plain
    assert nn.get_model("mnist1d_gru", cell="lstm").cell == "lstm"
    assert nn.get_model("mnist1d_cnn", num_outputs=4).num_outputs == 4
    with pytest.raises(TypeError):
        nn.get_model("mnist1d_mlp", no_such_field=1)


def test_unknown_name_lists_the_valid_ones_and_close_matches():
    with pytest.raises(KeyError) as info:
        nn.get_model("resnet51")
    message = str(info.value)
    assert "unknown model 'resnet51'" in message and "Did you mean 'resnet50'" in message
    for name in NAMED:
        assert name in message
    with pytest.raises(KeyError, match="Registered models: ") as info:
        nn.get_model("transformer")
    assert "Did you mean" not in str(info.value)


def test_register_model_as_decorator_and_refuses_a_taken_name(monkeypatch):
    from jdl.nn import registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @nn.register_model
    def tiny_test_mlp(**overrides):
        return nn.MLP(**{"widths": (4,), "num_outputs": 2, **overrides})

    assert "tiny_test_mlp" in nn.list_models()
    assert nn.get_model("tiny_test_mlp", num_outputs=5).num_outputs == 5
    with pytest.raises(ValueError, match="already registered"):
        nn.register_model(lambda **kw: nn.MLP(widths=(), num_outputs=1), name="tiny_test_mlp")
    linear = lambda **kw: nn.MLP(widths=(), num_outputs=1)  # noqa: E731
    nn.register_model(linear, name="resnet18", overwrite=True)
    assert nn.get_model("resnet18").widths == ()
