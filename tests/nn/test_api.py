"""The public surface of jdl.nn: exports and the shared model contract."""

import dataclasses
import inspect

import flax.linen as fnn
import pytest

import jdl
from jdl import nn

MODELS = [nn.MLP, nn.CNN, nn.VGG, nn.RNNClassifier, nn.ResNet, nn.CifarResNet]


def test_all_names_are_exported():
    expected = {
        "MLP", "CNN", "VGG", "vgg11", "vgg13", "vgg16", "vgg19", "RNNClassifier", "ResNet",
        "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101",
        "resnet152", "CifarResNet", "get_initializer", "get_activation", "normal", "uniform",
        "count_params",
    }  # fmt: skip
    assert expected <= set(nn.__all__)
    for name in nn.__all__:
        assert getattr(nn, name) is not None
    assert jdl.nn is nn


@pytest.mark.parametrize("model", MODELS)
def test_models_share_the_contract(model):
    assert issubclass(model, fnn.Module)
    fields = {f.name: f for f in dataclasses.fields(model)}
    assert "num_outputs" in fields and "dtype" in fields and "param_dtype" in fields
    train = inspect.signature(model.__call__).parameters["train"]
    assert train.kind is inspect.Parameter.KEYWORD_ONLY
    assert model.head_name in ("head", "fc")
    assert model.__doc__ and "Attributes:" in model.__doc__


@pytest.mark.parametrize("fn", [nn.vgg11, nn.resnet18, nn.resnet152])
def test_constructors_take_num_outputs_and_keywords(fn):
    model = fn(num_outputs=7, bn_momentum=0.99)
    assert model.num_outputs == 7 and model.bn_momentum == 0.99
