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
from jdl.nn.summary import LayerSummary, ModelSummary, summary
from jdl.nn.utils import count_params
from jdl.nn.vgg import VGG, VGG_CONFIGS, vgg11, vgg13, vgg16, vgg19, vgg_layer_plan

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
