"""Pretrained weights in and out, and transfer learning.

Read other frameworks' weights into jdl models (returning Flax variables, ``params`` and
``batch_stats``), save and load jdl's own format, download known checkpoints with checksum
verification, and repurpose a trained network: replace its head, freeze its backbone.

- :func:`from_torchvision` / :func:`from_timm`: ResNet-18 ... 152 and (torchvision)
  VGG-11 ... 19 with or without BatchNorm state dicts, the architecture read from the names
  (``.safetensors`` without torch; ``.pth`` via ``torch.load(weights_only=True)``).
- :func:`from_keras`: Keras ``VGG16`` / ``VGG19`` and ``ResNet50`` (also 101 / 152)
  ``.h5`` / ``.weights.h5`` files.
- :func:`save` / :func:`load_jdl`: jdl's format (safetensors + the model config).
- :func:`load`: a registered name (:func:`available`; its model is built by name with
  :func:`jdl.nn.get_model`) or any of the above files; ``num_outputs=k`` replaces a head of
  another size with a fresh one, as timm does.
- :func:`replace_head`, :func:`freeze`, :class:`FreezeBatchNorm`, :func:`finetune_state`.
- :mod:`jdl.pretrained.preprocess`: inputs prepared as each source expects.

Loading is strict by default: every missing, unexpected or shape-mismatched weight is
listed in one :class:`WeightMismatchError`; ``strict=False`` loads what fits and returns a
:class:`LoadReport` (torchvision weights: only a different head or extra bookkeeping
entries; weights of another architecture are refused). No loader ever executes code from
a file.

Example:
  >>> import jax, jax.numpy as jnp, optax
  >>> from jdl import nn, pretrained
  >>> model = nn.MLP(widths=(16,), num_outputs=5)
  >>> v = model.init(jax.random.key(0), jnp.ones((1, 40)), train=False)
  >>> model, v = pretrained.replace_head(model, v, 3)
  >>> tx = pretrained.freeze(optax.adam(1e-3), ["head"])  # train the new head only
"""

from jdl._core.tree import flatten, unflatten
from jdl.pretrained import hub, preprocess
from jdl.pretrained._keras_h5 import read_keras_weights
from jdl.pretrained._result import Pretrained
from jdl.pretrained._tree import LoadReport
from jdl.pretrained.errors import ChecksumError, WeightFileError, WeightMismatchError
from jdl.pretrained.hub import HubEntry, available, download, register
from jdl.pretrained.jdl_format import load_jdl, save
from jdl.pretrained.keras import from_keras
from jdl.pretrained.loading import detect_format, load
from jdl.pretrained.surgery import (
    FreezeBatchNorm,
    finetune_state,
    freeze,
    is_trainable,
    replace_head,
    trainable_mask,
)
from jdl.pretrained.torch import (
    from_timm,
    from_torchvision,
    jdl_resnet_to_torch,
    read_state_dict,
    resnet_from_state_dict,
    torch_resnet_to_jdl,
)
from jdl.pretrained.torch_vgg import jdl_vgg_to_torch, torch_vgg_to_jdl, vgg_from_state_dict

__all__ = [
    "ChecksumError",
    "FreezeBatchNorm",
    "HubEntry",
    "LoadReport",
    "Pretrained",
    "WeightFileError",
    "WeightMismatchError",
    "available",
    "detect_format",
    "download",
    "finetune_state",
    "flatten",
    "freeze",
    "from_keras",
    "from_timm",
    "from_torchvision",
    "hub",
    "is_trainable",
    "jdl_resnet_to_torch",
    "jdl_vgg_to_torch",
    "load",
    "load_jdl",
    "preprocess",
    "read_keras_weights",
    "read_state_dict",
    "register",
    "replace_head",
    "resnet_from_state_dict",
    "save",
    "torch_resnet_to_jdl",
    "torch_vgg_to_jdl",
    "trainable_mask",
    "unflatten",
    "vgg_from_state_dict",
]
