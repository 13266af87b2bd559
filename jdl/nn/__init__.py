"""Neural-network models as pure :mod:`flax.linen` modules, plus initialisers and activations.

Every model is a :class:`flax.linen.Module` whose output size is its ``num_outputs`` field and
whose ``__call__(x, *, train)`` maps a batch of inputs to ``(batch, num_outputs)`` outputs
(logits or regression targets). ``train=True`` turns on dropout (RNG stream ``"dropout"``) and
makes BatchNorm use and update batch statistics (``mutable=["batch_stats"]``). Computation and
parameter dtypes are the ``dtype`` (default float32; ``None`` lets Flax infer it, with integer
inputs cast to float32) and ``param_dtype`` fields. Each model names its output
layer in the class attribute ``head_name`` (``"head"``, or ``"fc"`` for ResNets).
:func:`get_model` builds every named model by name (``get_model("resnet50", num_outputs=10)``,
``get_model("mnist1d_cnn")``); :func:`list_models` lists the names.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jdl import nn
  >>> model = nn.MLP(widths=(100, 100), num_outputs=10)
  >>> variables = model.init(jax.random.key(0), jnp.ones((1, 40)), train=False)
  >>> nn.count_params(variables)
  15210
"""

from typing import TYPE_CHECKING

from jdl._core.lazy import lazy_exports

# At the top, not on first use: the function ``summary`` has the name of its module, which
# an import of ``jdl.nn.summary`` elsewhere would otherwise set as ``jdl.nn.summary``.
from jdl.nn.summary import LayerSummary, ModelSummary, summary

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from jdl.nn.activations import ACTIVATION_NAMES, get_activation, identity
    from jdl.nn.cifar_resnet import CifarResNet
    from jdl.nn.conv import CNN
    from jdl.nn.init import INITIALIZER_NAMES, get_initializer, normal, standard, uniform
    from jdl.nn.mlp import MLP
    from jdl.nn.recurrent import RNN_CELLS, RNNClassifier
    from jdl.nn.registry import get_model, list_models, register_model
    from jdl.nn.resnet import (
        ResNet,
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
    )
    from jdl.nn.resnet_blocks import BasicBlock, Bottleneck
    from jdl.nn.utils import count_params
    from jdl.nn.vgg import VGG, VGG_CONFIGS, vgg11, vgg13, vgg16, vgg19, vgg_layer_plan

#: Where each public name lives: ``jdl.nn.MLP`` imports :mod:`jdl.nn.mlp` (and what it
#: needs), not every model of the package.
_WHERE = {
    "ACTIVATION_NAMES": "jdl.nn.activations",
    "get_activation": "jdl.nn.activations",
    "identity": "jdl.nn.activations",
    "CifarResNet": "jdl.nn.cifar_resnet",
    "CNN": "jdl.nn.conv",
    "INITIALIZER_NAMES": "jdl.nn.init",
    "get_initializer": "jdl.nn.init",
    "normal": "jdl.nn.init",
    "standard": "jdl.nn.init",
    "uniform": "jdl.nn.init",
    "MLP": "jdl.nn.mlp",
    "RNN_CELLS": "jdl.nn.recurrent",
    "RNNClassifier": "jdl.nn.recurrent",
    "get_model": "jdl.nn.registry",
    "list_models": "jdl.nn.registry",
    "register_model": "jdl.nn.registry",
    "ResNet": "jdl.nn.resnet",
    "resnet18": "jdl.nn.resnet",
    "resnet34": "jdl.nn.resnet",
    "resnet50": "jdl.nn.resnet",
    "resnet101": "jdl.nn.resnet",
    "resnet152": "jdl.nn.resnet",
    "BasicBlock": "jdl.nn.resnet_blocks",
    "Bottleneck": "jdl.nn.resnet_blocks",
    "count_params": "jdl.nn.utils",
    "VGG": "jdl.nn.vgg",
    "VGG_CONFIGS": "jdl.nn.vgg",
    "vgg11": "jdl.nn.vgg",
    "vgg13": "jdl.nn.vgg",
    "vgg16": "jdl.nn.vgg",
    "vgg19": "jdl.nn.vgg",
    "vgg_layer_plan": "jdl.nn.vgg",
}

__all__ = [
    "ACTIVATION_NAMES",
    "CNN",
    "INITIALIZER_NAMES",
    "MLP",
    "RNN_CELLS",
    "VGG",
    "VGG_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "LayerSummary",
    "ModelSummary",
    "RNNClassifier",
    "ResNet",
    "count_params",
    "get_activation",
    "get_initializer",
    "get_model",
    "identity",
    "list_models",
    "normal",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "standard",
    "summary",
    "uniform",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_layer_plan",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
