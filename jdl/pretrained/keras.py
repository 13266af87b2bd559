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
stride_in_1x1=True, bn_epsilon=1.001e-5)`` (:func:`resnet_from_keras_weights`), with names

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

Keras' ``preprocess_input`` for all these models is the "caffe" mode (BGR, ImageNet mean
subtracted, no scaling; :data:`jdl.pretrained.preprocess.KERAS_CAFFE`). Keras' ``ResNet50V2``
(pre-activation) has no jdl counterpart and is refused.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jdl.nn.resnet import Bottleneck, ResNet
from jdl.nn.vgg import VGG
from jdl.pretrained._result import Pretrained
from jdl.pretrained._tree import merge_into
from jdl.pretrained.errors import WeightFileError

__all__ = [
    "from_keras",
    "keras_resnet_to_jdl",
    "keras_vgg_to_jdl",
    "read_keras_weights",
    "resnet_from_keras_weights",
    "vgg_from_keras_weights",
    "vgg_layer_names",
]

_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")


def _decode(name: Any) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _legacy_layers(group: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer in (_decode(n) for n in group.attrs["layer_names"]):
        g = group[layer]
        names = [_decode(n) for n in g.attrs.get("weight_names", [])]
        layers[layer] = [(n.rsplit("/", 1)[-1].split(":")[0], np.asarray(g[n])) for n in names]
    return layers


def _keras3_layers(group: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}

    def visit(g: Any, prefix: str) -> None:
        for key in g:
            item = g[key]
            if not hasattr(item, "keys"):
                continue
            if key == "vars":
                values = [(k, np.asarray(item[k])) for k in sorted(item, key=int)]
                if values:
                    name = prefix.rsplit("/", 1)[-1]
                    recorded = _decode(item.attrs.get("name", ""))
                    if recorded and recorded not in layers:
                        name = recorded  # the layer's own name (recent Keras 3)
                    layers[name] = values
            else:
                visit(item, f"{prefix}/{key}" if prefix else key)

    visit(group, "")
    return layers


def read_keras_weights(path: str | os.PathLike) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The weights of a Keras ``.h5`` / ``.weights.h5`` file, by layer, in file order.

    Args:
      path: the ``.h5`` or ``.weights.h5`` file.

    Returns:
      ``{layer_name: [(weight_name, array), ...]}``. Legacy files give the weight names
      (``"kernel"``, ``"bias"``, ``"gamma"``, ...); Keras 3 files give their indices
      (``"0"``, ``"1"``, ...), which follow the layer's creation order, and key each layer by
      the name recorded in the file (recent Keras 3) or else by its group (``"conv2d_3"``).

    Raises:
      FileNotFoundError: no such file.
      WeightFileError: not an HDF5 file, truncated, or of no known Keras layout.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                return _legacy_layers(f)
            if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
                return _legacy_layers(f["model_weights"])
            if "layers" in f:
                return _keras3_layers(f["layers"])
            top = ", ".join(list(f.keys())[:8]) or "(nothing)"
    except (OSError, KeyError, ValueError) as err:
        raise WeightFileError(
            f"{str(path)!r} ({path.stat().st_size} bytes) is not a readable HDF5 weight file: "
            f"{err}. It may be truncated (an interrupted download); download it again."
        ) from err
    raise WeightFileError(
        f"{str(path)!r} is an HDF5 file but not Keras weights: expected a 'layer_names' "
        f"attribute (legacy .h5) or a 'layers' group (Keras 3 .weights.h5), found {top}"
    )


def _suffix(name: str) -> int:
    m = re.search(r"_(\d+)$", name)
    return int(m[1]) if m else 0


def _is_named(layers: Mapping[str, Any]) -> bool:
    """Legacy files name layers as the model does (``block1_conv1``); Keras 3 by type."""
    return any(re.fullmatch(r"block\d+_conv\d+|fc\d+|predictions", k) for k in layers)


def _kind(weights: list[tuple[str, np.ndarray]]) -> str | None:
    """``"conv"``, ``"dense"`` or ``"bn"`` from a layer's array ranks, else None."""
    ndims = [w.ndim for _, w in weights]
    if ndims in ([4, 1], [4]):
        return "conv"
    if ndims in ([2, 1], [2]):
        return "dense"
    if ndims == [1, 1, 1, 1]:
        return "bn"
    return None


def _by_kind(
    layers: Mapping[str, list[tuple[str, np.ndarray]]],
) -> dict[str, list[str]]:
    """Layers with weights grouped by kind, each group in Keras' order (``conv2d_10`` last)."""
    order = lambda n: (re.sub(r"_\d+$", "", n), _suffix(n))  # noqa: E731
    groups: dict[str, list[str]] = {"conv": [], "bn": [], "dense": [], "other": []}
    for name, weights in layers.items():
        if weights:
            groups[_kind(weights) or "other"].append(name)
    return {k: sorted(v, key=order) for k, v in groups.items()}


def _positional(layers: Mapping[str, list[tuple[str, np.ndarray]]]) -> tuple[list[str], list[str]]:
    """Keras 3 conv and Dense layers holding a kernel and a bias, each in creation order."""
    groups = _by_kind(layers)
    convs, denses = ([n for n in groups[k] if len(layers[n]) == 2] for k in ("conv", "dense"))
    return convs, denses


def vgg_layer_names(model: VGG) -> tuple[list[str], list[str]]:
    """A jdl VGG's conv and dense layer names in forward order (dense ends with the head)."""
    from jdl.nn.vgg import _resolve_config

    convs, block, conv = [], 1, 0
    for entry in _resolve_config(model.config):
        if entry == "M":
            block, conv = block + 1, 0
        else:
            conv += 1
            convs.append(f"block{block}_conv{conv}")
    denses = [f"fc{i + 1}" for i in range(len(model.classifier))] + [type(model).head_name]
    return convs, denses


def keras_vgg_to_jdl(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], model: VGG
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Keras VGG16/VGG19 layers -> flat jdl paths of ``model``'s variables.

    Legacy files map by name (``block1_conv1`` -> ``block1_conv1``, ``fc1`` -> ``fc1``,
    ``predictions`` -> ``head``). Keras 3 ``.weights.h5`` files name layers by type
    (``conv2d``, ``conv2d_1``, ..., ``dense``, ``dense_1``, ...), so their convs and Dense
    layers map in creation order onto ``model``'s convs and classifier.

    Returns:
      ``(flat, unmapped)`` where ``unmapped`` lists ``"layer/weight"`` names that fit no
      VGG layer (conv/Dense layers hold exactly a kernel and a bias).
    """
    flat: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    head = type(model).head_name
    if _is_named(layers):
        targets = {name: (head if name == "predictions" else name) for name in layers}
    else:
        convs, denses = _positional(layers)
        jconvs, jdenses = vgg_layer_names(model)
        targets = dict(zip(convs, jconvs, strict=False))
        targets.update(zip(denses, jdenses, strict=False))
    for layer, weights in layers.items():
        if not weights:
            continue
        ndims = [w.ndim for _, w in weights]
        if layer in targets and len(weights) == 2 and ndims[1] == 1 and ndims[0] in (2, 4):
            flat[f"params/{targets[layer]}/kernel"] = weights[0][1]
            flat[f"params/{targets[layer]}/bias"] = weights[1][1]
        else:
            unmapped += [f"{layer}/{name}" for name, _ in weights]
    return flat, unmapped


def vgg_from_keras_weights(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], **kwargs: Any
) -> VGG:
    """The :class:`~jdl.nn.VGG` a Keras VGG16/VGG19 weight file describes.

    Legacy files: the conv layout comes from the ``block{b}_conv{c}`` names, the classifier
    from ``fc1``, ``fc2``, ... and ``predictions``. Keras 3 files (layers named by type):
    the sequence of conv widths must be that of a known configuration (VGG-11/13/16/19);
    the last Dense layer is the head. Keras' VGGs have no dropout, so ``dropout=0``.
    Without a top (``include_top=False``) the classifier is ``()`` (load with
    ``strict=False``). ``kwargs`` override any field.

    Raises:
      WeightFileError: the layers do not describe a VGG.
    """
    from jdl.nn.vgg import VGG_CONFIGS

    settings: dict[str, Any] = {"dropout": 0.0}
    if _is_named(layers):
        convs: dict[int, dict[int, int]] = {}
        fcs: dict[int, int] = {}
        for layer, weights in layers.items():
            m = re.fullmatch(r"block(\d+)_conv(\d+)", layer)
            if m and weights:
                convs.setdefault(int(m[1]), {})[int(m[2])] = int(weights[0][1].shape[-1])
            m = re.fullmatch(r"fc(\d+)", layer)
            if m and weights:
                fcs[int(m[1])] = int(weights[0][1].shape[-1])
        config: list[int | str] = []
        for b in sorted(convs):
            config += [convs[b][c] for c in sorted(convs[b])] + ["M"]
        settings["config"] = tuple(config)
        settings["classifier"] = tuple(fcs[i] for i in sorted(fcs))
        if layers.get("predictions"):
            settings["num_outputs"] = int(layers["predictions"][0][1].shape[-1])
    else:
        convs_, denses = _positional(layers)
        widths = [int(layers[n][0][1].shape[-1]) for n in convs_]
        names = [k for k, c in VGG_CONFIGS.items() if [e for e in c if e != "M"] == widths]
        if not names:
            raise WeightFileError(
                f"not a Keras VGG weight file: conv widths {widths} match no VGG configuration "
                f"({', '.join(VGG_CONFIGS)}); pass model= to load it into your own VGG"
            )
        settings["config"] = names[0]
        outs = [int(layers[n][0][1].shape[-1]) for n in denses]
        settings["classifier"] = tuple(outs[:-1])
        if outs:
            settings["num_outputs"] = outs[-1]
    if not settings["config"]:
        raise WeightFileError(
            f"not a Keras VGG weight file: no block<b>_conv<c> layers among {list(layers)[:8]}"
        )
    settings.update(kwargs)
    return VGG(**settings)


# --- ResNet50 / 101 / 152 (v1) ------------------------------------------------------------

_RESNET_LAYER = re.compile(r"conv(\d+)_block(\d+)_([0-3])_(conv|bn)")
_KERAS_BN_EPSILON = 1.001e-5


def _is_named_resnet(layers: Mapping[str, Any]) -> bool:
    return "conv1_conv" in layers or any(_RESNET_LAYER.fullmatch(k) for k in layers)


def _is_keras_resnet(layers: Mapping[str, list[tuple[str, np.ndarray]]]) -> bool:
    """ResNet names, or (Keras 3 files without names) BatchNorm layers, which VGGs lack."""
    return _is_named_resnet(layers) or any(_kind(w) == "bn" for w in layers.values() if w)


def _refuse_resnet_v2(layers: Mapping[str, Any]) -> None:
    if any(k == "post_bn" or k.endswith("_preact_bn") for k in layers):
        raise WeightFileError(
            "this is a Keras ResNet50V2/101V2/152V2 weight file (layers 'post_bn', "
            "'*_preact_bn'): a pre-activation ResNet, which jdl's ResNet (post-activation, "
            "v1 or v1.5) does not implement. Keras' ResNet50/101/152 files load."
        )


def _resnet_module(layer: str, head: str) -> str | None:
    """The jdl module path of a Keras ResNet layer name (None if it is not one)."""
    if layer == "conv1_conv":
        return "conv1"
    if layer == "conv1_bn":
        return "bn1"
    if layer == "predictions":
        return head
    m = _RESNET_LAYER.fullmatch(layer)
    if m is None or int(m[1]) < 2 or int(m[2]) < 1:
        return None
    sub = f"downsample_{m[4]}" if m[3] == "0" else f"{m[4]}{m[3]}"
    return f"layer{int(m[1]) - 1}_{int(m[2]) - 1}/{sub}"


def _expected_kind(module: str, head: str) -> str:
    if module == head:
        return "dense"
    leaf = module.rsplit("/", 1)[-1]
    return "conv" if leaf.startswith("conv") or leaf == "downsample_conv" else "bn"


def _norm_of(conv_module: str) -> str:
    """The BatchNorm that follows a conv: conv1 -> bn1, .../conv2 -> .../bn2, ..."""
    parent, _, leaf = conv_module.rpartition("/")
    leaf = "downsample_bn" if leaf == "downsample_conv" else leaf.replace("conv", "bn")
    return f"{parent}/{leaf}" if parent else leaf


def _keras_resnet_order(model: ResNet) -> tuple[list[str], list[str]]:
    """Keras' names of ``model``'s conv and BatchNorm layers, in Keras' layer order.

    A downsampling block lists ``_1``, ``_2``, ``_0`` (shortcut), ``_3``; the others ``_1``,
    ``_2``, ``_3``. Every bottleneck stage starts with a downsampling (projection) block.
    """
    convs, norms = ["conv1_conv"], ["conv1_bn"]
    for s, num_blocks in enumerate(model.stage_sizes):
        for i in range(num_blocks):
            for k in (1, 2, 0, 3) if i == 0 else (1, 2, 3):
                convs.append(f"conv{s + 2}_block{i + 1}_{k}_conv")
                norms.append(f"conv{s + 2}_block{i + 1}_{k}_bn")
    return convs, norms


def _name_by_position(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], model: ResNet
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Give a Keras 3 file's type-named layers (``conv2d_7``) Keras ResNet names, by order.

    Layers beyond the model's count keep their names (and end up reported as unexpected).
    """
    groups = _by_kind(layers)
    convs, norms = _keras_resnet_order(model)
    rename: dict[str, str] = {}
    for kind, names in (("conv", convs), ("bn", norms), ("dense", ["predictions"])):
        rename.update(zip(groups[kind], names, strict=False))
    return {rename.get(name, name): weights for name, weights in layers.items()}


def _bn_arrays(weights: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    """gamma, beta, moving_mean, moving_variance by name (legacy) or position (Keras 3)."""
    names = [n for n, _ in weights]
    if sorted(names) == sorted(_BN_VARS):
        return dict(weights)
    if names == ["0", "1", "2", "3"]:
        return dict(zip(_BN_VARS, (w for _, w in weights), strict=True))
    return None


def keras_resnet_to_jdl(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], model: ResNet | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Keras ResNet50/101/152 layers -> flat jdl paths of a ResNet's variables.

    Maps by name (legacy files, and Keras 3 files that record layer names) or, for Keras 3
    files whose layers are named by type only, by position in Keras' layer order (which needs
    ``model``'s stage sizes). Conv biases are folded into the moving mean of the BatchNorm
    that follows (``mean - bias``, see the module docstring).

    Args:
      layers: :func:`read_keras_weights`'s result.
      model: the bottleneck :class:`~jdl.nn.ResNet` the weights are for; by default
        :func:`resnet_from_keras_weights` ``(layers)``.

    Returns:
      ``(flat, unmapped)``: ``{"params/layer1_0/conv1/kernel": ..., "batch_stats/bn1/mean":
      ...}`` and the ``"layer/weight"`` names that fit no ResNet variable.

    Raises:
      ValueError: ``model`` is not a Bottleneck ResNet (Keras' ResNets all are).
      WeightFileError: the layers do not describe a Keras ResNet (when ``model`` is None).
    """
    if model is None:
        model = resnet_from_keras_weights(layers)
    if not isinstance(model, ResNet) or model.block_cls is not Bottleneck:
        raise ValueError(
            "Keras ResNet weights need a jdl ResNet with block_cls=Bottleneck (Keras' "
            f"ResNet50/101/152 are bottleneck ResNets), got {model!r}"
        )
    head = type(model).head_name
    if not _is_named_resnet(layers):
        layers = _name_by_position(layers, model)
    flat: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    biases: dict[str, tuple[str, np.ndarray]] = {}
    for layer, weights in layers.items():
        if not weights:
            continue
        module, kind = _resnet_module(layer, head), _kind(weights)
        arrays = _bn_arrays(weights) if kind == "bn" else None
        if module is None or kind != _expected_kind(module, head) or (kind == "bn" and not arrays):
            unmapped += [f"{layer}/{name}" for name, _ in weights]
        elif kind == "bn":
            flat[f"params/{module}/scale"] = arrays["gamma"]
            flat[f"params/{module}/bias"] = arrays["beta"]
            flat[f"batch_stats/{module}/mean"] = arrays["moving_mean"]
            flat[f"batch_stats/{module}/var"] = arrays["moving_variance"]
        else:
            flat[f"params/{module}/kernel"] = weights[0][1]
            if len(weights) == 2 and kind == "dense":
                flat[f"params/{module}/bias"] = weights[1][1]
            elif len(weights) == 2:
                biases[module] = (f"{layer}/{weights[1][0]}", weights[1][1])
    for conv, (name, bias) in biases.items():
        key = f"batch_stats/{_norm_of(conv)}/mean"
        if key in flat and flat[key].shape == bias.shape:
            folded = flat[key].astype(np.float64) - bias.astype(np.float64)
            flat[key] = folded.astype(flat[key].dtype)
        else:
            unmapped.append(f"{name} (no BatchNorm of the same size to fold the bias into)")
    return flat, unmapped


def _positional_stages(kernels: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """Blocks per stage from conv kernel shapes in Keras' order (stem first), or None.

    A downsampling block is ``1x1 (f)``, ``3x3 (f)``, ``1x1 (4f)`` shortcut, ``1x1 (4f)``; an
    identity block ``1x1 (f)``, ``3x3 (f)``, ``1x1 (4f)``, followed by the next block's first
    conv, whose width is ``f`` or ``2f``, never ``4f``. Each stage starts with a downsampling
    block.
    """
    stages: list[int] = []
    i = 1
    while i < len(kernels):
        if i + 2 >= len(kernels):
            return None
        first, mid, last = kernels[i], kernels[i + 1], kernels[i + 2]
        f = mid[-1]
        if first[:2] != (1, 1) or mid[:2] != (3, 3) or last[:2] != (1, 1) or last[-1] != 4 * f:
            return None
        nxt = kernels[i + 3] if i + 3 < len(kernels) else None
        if nxt is not None and nxt[:2] == (1, 1) and nxt[-1] == 4 * f:
            stages.append(1)
            i += 4
        elif stages:
            stages[-1] += 1
            i += 3
        else:
            return None
    return tuple(stages) or None


def resnet_from_keras_weights(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], **kwargs: Any
) -> ResNet:
    """The :class:`~jdl.nn.ResNet` a Keras ResNet50/101/152 weight file describes.

    ``ResNet(stage_sizes, Bottleneck, stride_in_1x1=True, bn_epsilon=1.001e-5, width=...,
    num_outputs=...)``: the blocks per stage from the ``conv{s}_block{i}`` names (or, for
    Keras 3 files without names, from the sequence of conv shapes), ``width`` from
    ``conv1_conv``, ``num_outputs`` from ``predictions`` (left at 1000 in files without a
    top; load those with ``strict=False``). ``kwargs`` override any field.

    Args:
      layers: :func:`read_keras_weights`'s result.
      **kwargs: other ResNet fields (``dtype``, ...).

    Returns:
      An unbound :class:`~jdl.nn.ResNet` (e.g. stages ``(3, 4, 6, 3)`` for ResNet50).

    Raises:
      WeightFileError: the layers do not describe a Keras ResNet.
    """
    settings: dict[str, Any] = dict(
        block_cls=Bottleneck, stride_in_1x1=True, bn_epsilon=_KERAS_BN_EPSILON
    )
    if _is_named_resnet(layers):
        blocks: dict[int, int] = {}
        for layer, weights in layers.items():
            m = _RESNET_LAYER.fullmatch(layer)
            if m and weights:
                s, i = int(m[1]), int(m[2])
                blocks[s] = max(blocks.get(s, 0), i)
        if not blocks or sorted(blocks) != list(range(2, len(blocks) + 2)):
            raise WeightFileError(
                "not a Keras ResNet weight file: expected stages conv2_block*, conv3_block*, "
                f"... without gaps, found stages {sorted(blocks)}"
            )
        settings["stage_sizes"] = tuple(blocks[s] for s in sorted(blocks))
        stem, head = layers.get("conv1_conv"), layers.get("predictions")
    else:
        groups = _by_kind(layers)
        kernels = [tuple(layers[n][0][1].shape) for n in groups["conv"]]
        stages = _positional_stages(kernels)
        if stages is None or kernels[0][:2] != (7, 7):
            raise WeightFileError(
                "not a Keras ResNet weight file: its layers have no names and their conv "
                f"shapes (first ones: {kernels[:5]}) do not follow Keras' ResNet order; "
                "pass model= to load it into your own ResNet"
            )
        settings["stage_sizes"] = stages
        stem = layers[groups["conv"][0]]
        head = layers[groups["dense"][-1]] if groups["dense"] else None
    if stem:
        settings["width"] = int(stem[0][1].shape[-1])
    if head:
        settings["num_outputs"] = int(head[0][1].shape[-1])
    settings.update(kwargs)
    return ResNet(**settings)


# --- entry point ---------------------------------------------------------------------------


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
        one the file describes (:func:`vgg_from_keras_weights`, e.g. ``vgg16()`` with
        ``dropout=0``; :func:`resnet_from_keras_weights`). A ResNet with
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
      WeightFileError: an unreadable file, or one of no supported Keras model (e.g.
        ``ResNet50V2``).
      WeightMismatchError: weights that do not fit the model (``strict=True``).

    Example:
      >>> # p = jdl.pretrained.from_keras("resnet50_weights_tf_dim_ordering_tf_kernels.h5")
      >>> # x = jdl.pretrained.preprocess.preprocess(images, p.info)   # caffe mode, BGR
      >>> # logits = p.model.apply(p.variables, x, train=False)
    """
    layers = read_keras_weights(path)
    _refuse_resnet_v2(layers)
    is_resnet = isinstance(model, ResNet) if model is not None else _is_keras_resnet(layers)
    if is_resnet:
        if model is None:
            model = resnet_from_keras_weights(layers)
        elif model.block_cls is Bottleneck and not model.stride_in_1x1:
            warnings.warn(
                "Keras' ResNets are ResNet v1 (stride on the first 1x1 conv); this ResNet has "
                "stride_in_1x1=False (v1.5), so with these weights it will not compute what "
                "the Keras model computes. Use stride_in_1x1=True for equal outputs.",
                stacklevel=2,
            )
        flat, unmapped = keras_resnet_to_jdl(layers, model)
        stem = flat.get("params/conv1/kernel")
        channels = int(stem.shape[2]) if stem is not None and stem.ndim == 4 else 3
    else:
        if model is None:
            model = vgg_from_keras_weights(layers)
        flat, unmapped = keras_vgg_to_jdl(layers, model)
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
