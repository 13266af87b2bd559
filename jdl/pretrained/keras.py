"""Keras applications weight files (``.h5`` / ``.weights.h5``) -> jdl VGG and ResNet variables.

Two on-disk layouts are read with :mod:`h5py` (no Keras or TensorFlow needed):

- **legacy HDF5** (Keras 2 ``save_weights("x.h5")``, the files Keras applications
  download, and ``model_weights`` inside a whole-model ``.h5``): the root lists
  ``layer_names``; group ``<layer>`` lists ``weight_names`` such as ``"fc1/kernel:0"``.
- **Keras 3** ``.weights.h5``: ``layers/<layer>/vars/0, 1, ...`` in creation order
  (kernel then bias; BatchNorm gamma, beta, moving mean, moving variance), where
  ``<layer>`` is the layer's *type* and position (``conv2d``, ``conv2d_1``, ...,
  ``batch_normalization``, ``dense``). Recent Keras 3 versions (3.15 does) also store the
  layer's own name (``block1_conv1``, ``conv2_block1_0_conv``) as the ``name`` attribute of
  ``vars``; :func:`read_keras_weights` then keys the layer by that name, and layers map by
  name as in legacy files. Without it, layers map by position (see below).

**VGG16 / VGG19.** Keras' layouts are already jdl's: conv kernels are HWIO and Dense kernels
``(in, out)``, and ``Flatten`` of channels-last maps flattens ``(height, width, channels)``,
like :class:`jdl.nn.VGG`. So Keras ``VGG16``'s ``block{b}_conv{c}``, ``fc1``, ``fc2`` map by
name and ``predictions`` becomes jdl's ``head``; positionally, the ``conv2d*`` and ``dense*``
layers map in order onto the model's convs and classifier.

**ResNet50** (and ResNet101 / ResNet152, built by the same Keras code) is ResNet **v1**:
the stride of a downsampling bottleneck sits on its first 1x1 conv, every conv has a bias,
BatchNorm epsilon is 1.001e-5. It is jdl's ``ResNet(stage_sizes, Bottleneck,
stride_in_1x1=True, bn_epsilon=1.001e-5)`` (:func:`_resnet_from_keras_weights`), with names

===========================================  ====================================================
Keras layer                                  jdl module
===========================================  ====================================================
``conv1_conv``, ``conv1_bn``                 ``conv1``, ``bn1``
``conv{s+1}_block{i+1}_{k}_conv`` / ``_bn``  ``layer{s}_{i}/conv{k}`` / ``bn{k}`` (k = 1, 2, 3)
``conv{s+1}_block{i+1}_0_conv`` / ``_bn``    ``layer{s}_{i}/downsample_conv`` / ``downsample_bn``
``predictions``                              ``fc``
===========================================  ====================================================

(``conv2_block1_2_conv`` is ``layer1_0/conv2``). Conv kernels and the Dense kernel keep
their layout (HWIO, ``(in, out)``). BatchNorm ``gamma``, ``beta`` become ``params``
``scale``, ``bias``; ``moving_mean``, ``moving_variance`` become ``batch_stats`` ``mean``,
``var``. Positionally (Keras 3 files without names), Keras lists a downsampling block's
layers in graph order, ``_1``, ``_2``, ``_0``, ``_3`` (the shortcut conv after the 3x3 conv),
for convs and BatchNorms alike; the mapping follows that order.

*Conv biases are folded into the BatchNorms.* jdl's convs have no bias, and every conv of a
Keras ResNet feeds a BatchNorm. In inference mode ``BN(z) = gamma (z - mean) /
sqrt(var + eps) + beta``, so with ``z = conv(x) + b``::

    BN(conv(x) + b) = gamma (conv(x) - (mean - b)) / sqrt(var + eps) + beta

which is the BatchNorm with moving mean ``mean' = mean - b`` applied to the bias-free conv.
The loader stores ``mean - b`` (computed in float64) as ``batch_stats/.../mean``: equal
outputs up to float rounding, so the loaded ``mean`` is *not* the file's ``moving_mean``.
In training mode the bias cancels anyway (BatchNorm subtracts the batch mean, which shifts
by ``b`` too), so the folded model also trains like the Keras one. A conv bias with no
BatchNorm to fold into is reported as unexpected.

*Padding.* Keras pads explicitly (``ZeroPadding2D`` of 3 before the 7x7 stride-2 conv, of 1
before the 3x3 stride-2 max-pool; ``"same"`` 3x3 convs of stride 1 pad 1 on each side):
all symmetric, as jdl's. Keras pads the max-pool's input with zeros, jdl with ``-inf``;
that input follows a ReLU (values >= 0), so the maxima are the same.

The code: :mod:`jdl.pretrained.keras_vgg` (VGG mapping), :mod:`jdl.pretrained.keras_resnet`
(ResNet mapping), file reading in a private module; this module is the entry point and
re-exports their public names.

Keras' ``preprocess_input`` for all these models is the "caffe" mode (BGR, ImageNet mean
subtracted, no scaling; :data:`jdl.pretrained.preprocess.KERAS_CAFFE`). Keras' ``ResNet50V2``
(pre-activation) has no jdl counterpart and is refused; so are the other Keras applications
(MobileNet, MobileNetV2/V3, EfficientNet, DenseNet, Xception, Inception, NASNet, ConvNeXt),
recognised by their layer names, and files of named layers that are neither VGG's nor
ResNet's: each error names the architecture found and the supported ones.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

from jdl.nn.resnet import Bottleneck, ResNet
from jdl.nn.vgg import VGG
from jdl.pretrained._keras_h5 import check_layer_structure, read_keras_weights
from jdl.pretrained._result import Pretrained
from jdl.pretrained._tree import merge_into
from jdl.pretrained.errors import WeightFileError
from jdl.pretrained.keras_resnet import (
    _is_named_resnet,
    _keras_resnet_to_jdl,
    _resnet_from_keras_weights,
    is_keras_resnet,
    refuse_resnet_v2,
)
from jdl.pretrained.keras_vgg import _is_named, _keras_vgg_to_jdl, _vgg_from_keras_weights

__all__ = ["from_keras"]

_SUPPORTED = "Keras applications VGG16, VGG19, ResNet50, ResNet101 and ResNet152"
#: Other Keras applications, recognised by their layer names (``re.fullmatch``).
_OTHER_ARCHITECTURES = (
    ("Xception", r"block\d+_sepconv\d+(_bn|_act)?"),
    (
        "MobileNetV2",
        r"bn_Conv1|expanded_conv_(depthwise|project)(_BN)?|block_\d+_(expand|depthwise|project)(_BN)?",
    ),
    ("MobileNetV3", r"expanded_conv(_\d+)?/\w+"),
    ("MobileNet", r"conv_(dw|pw)_\d+(_bn)?|conv_preds"),
    (
        "EfficientNet",
        r"stem_conv|top_conv|block\d+[a-z]_(dwconv\d?|expand_conv|project_conv|se_\w+)",
    ),
    ("DenseNet", r"conv1/conv|conv1/bn|pool\d+_conv|pool\d+_bn"),
    ("InceptionResNetV2", r"block(35|17|8)_\d+(_conv)?|conv_7b(_bn)?"),
    ("InceptionV3", r"mixed\d+"),
    ("NASNet", r"stem_conv1|(normal|reduction)_\w+"),
    ("ConvNeXt", r"convnext_\w+"),
)
#: How Keras 3 names layers that have no name of their own (by type and position).
_BY_TYPE = re.compile(r"(conv2d|dense|batch_normalization)(_\d+)?")


def _refuse_other_architectures(layers: Mapping[str, list[tuple[str, Any]]], path: Any) -> None:
    """Raise :class:`WeightFileError` naming the architecture of a file jdl cannot map."""
    for arch, pattern in _OTHER_ARCHITECTURES:
        found = [k for k in layers if re.fullmatch(pattern, k)]
        if found:
            raise WeightFileError(
                f"{str(path)!r} holds Keras {arch} weights (layers {', '.join(found[:3])}, ...), "
                f"an architecture jdl does not implement. Supported: {_SUPPORTED}"
            )
    depthwise = [
        k
        for k, weights in layers.items()
        if re.fullmatch(r"(depthwise|separable)_conv2d(_\d+)?", k)
        or any(n.startswith(("depthwise_kernel", "pointwise_kernel")) for n, _ in weights)
    ]
    if depthwise:
        raise WeightFileError(
            f"{str(path)!r} holds weights of a network with depthwise convolutions (layers "
            f"{', '.join(depthwise[:3])}, ...; MobileNet/EfficientNet-style), which jdl does "
            f"not implement. Supported: {_SUPPORTED}"
        )


def _check_named(layers: Mapping[str, list[tuple[str, Any]]], path: Any) -> None:
    """Named layers must be VGG's or ResNet's; only Keras 3 type names map by position."""
    weighted = [k for k, w in layers.items() if w]
    if _is_named(layers) or _is_named_resnet(layers) or all(map(_BY_TYPE.fullmatch, weighted)):
        return
    raise WeightFileError(
        f"{str(path)!r} holds Keras weights of no supported architecture: its layers "
        f"({', '.join(weighted[:4])}, ...) are named neither as Keras' VGG16/VGG19 "
        f"(block1_conv1, ..., fc1, predictions) nor as its ResNets (conv1_conv, "
        f"conv2_block1_1_conv, ...). Supported: {_SUPPORTED}; pass model= to load a file of "
        "your own into one of them"
    )


def from_keras(
    path: str | os.PathLike,
    model: VGG | ResNet | None = None,
    *,
    strict: bool = True,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Pretrained:
    """Load Keras ``VGG16`` / ``VGG19`` / ``ResNet50`` weights (``.h5`` or ``.weights.h5``).

    The file's kind is recognised from its layers (ResNet names or BatchNorm layers ->
    ResNet, else VGG), or taken from ``model``. ResNets load into ``ResNet(..., Bottleneck,
    stride_in_1x1=True, bn_epsilon=1.001e-5)`` with each conv bias folded into the following
    BatchNorm's mean (see the module docstring); ResNet101/152 files load the same way.

    Args:
      path: the weight file (Keras applications' ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``
        or ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``, or a file written by
        ``model.save_weights(...)`` or ``model.save("x.h5")``).
      model: the :class:`~jdl.nn.VGG` or :class:`~jdl.nn.ResNet` to load into; by default the
        one the file describes (a VGG such as ``vgg16()`` with ``dropout=0``, or a ResNet
        v1 with ``stride_in_1x1=True``). A ResNet with
        ``stride_in_1x1=False`` (v1.5) takes the weights but does not compute what Keras'
        v1 model computes; a warning says so.
      strict: raise :class:`~jdl.pretrained.WeightMismatchError` listing every mismatch;
        ``False`` loads what fits and reports the rest (e.g. for ``include_top=False`` files).
      input_shape: a batch shape (default ``(1, 224, 224, channels)``); VGG's ``fc1`` size
        depends on it.
      seed: initial values for variables not loaded (``strict=False``).

    Returns:
      A :class:`~jdl.pretrained.Pretrained`; ``info`` is Keras' caffe preprocessing.

    Raises:
      FileNotFoundError: no such file.
      WeightFileError: an unreadable file (not HDF5, truncated), one of unexpected
        structure (a listed layer group or weight dataset missing, a conv / Dense /
        BatchNorm layer with the wrong number, rank or sizes of weights, no weights at all;
        the message names the file and the layer or dataset), or one of no supported Keras
        model (e.g. ``ResNet50V2``, ``MobileNetV2``; the message names it).
      WeightMismatchError: weights that do not fit the model (``strict=True``).

    Example:
      >>> # p = jdl.pretrained.from_keras("resnet50_weights_tf_dim_ordering_tf_kernels.h5")
      >>> # x = jdl.pretrained.preprocess.preprocess(images, p.info)   # caffe mode, BGR
      >>> # logits = p.model.apply(p.variables, x, train=False)
    """
    layers = read_keras_weights(path)
    check_layer_structure(layers, path)
    refuse_resnet_v2(layers)
    _refuse_other_architectures(layers, path)
    if model is None:
        _check_named(layers, path)
    is_resnet = isinstance(model, ResNet) if model is not None else is_keras_resnet(layers)
    if is_resnet:
        if model is None:
            model = _resnet_from_keras_weights(layers)
        elif model.block_cls is Bottleneck and not model.stride_in_1x1:
            warnings.warn(
                "Keras' ResNets are ResNet v1 (stride on the first 1x1 conv); this ResNet has "
                "stride_in_1x1=False (v1.5), so with these weights it will not compute what "
                "the Keras model computes. Use stride_in_1x1=True for equal outputs.",
                stacklevel=2,
            )
        flat, unmapped = _keras_resnet_to_jdl(layers, model)
        stem = flat.get("params/conv1/kernel")
        channels = int(stem.shape[2]) if stem is not None and stem.ndim == 4 else 3
    else:
        if model is None:
            model = _vgg_from_keras_weights(layers)
        flat, unmapped = _keras_vgg_to_jdl(layers, model)
        channels = 3
    variables, report = merge_into(
        model,
        flat,
        input_shape=input_shape or (1, 224, 224, channels),
        strict=strict,
        seed=seed,
        unexpected=unmapped,
        source=f"Keras weights {str(path)!r}",
    )
    from jdl.pretrained.preprocess import KERAS_CAFFE

    return Pretrained(model=model, variables=variables, report=report, info=dict(KERAS_CAFFE))
