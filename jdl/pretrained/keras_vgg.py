"""Keras ``VGG16`` / ``VGG19`` weights -> :class:`jdl.nn.VGG` variables.

See :mod:`jdl.pretrained.keras` for the mapping.

Keras' layouts are already jdl's (HWIO conv kernels, ``(in, out)`` Dense kernels,
``(height, width, channels)`` flattening), so only names map: by name for legacy files,
by position (onto :func:`jdl.nn.vgg_layer_plan`'s convs and the classifier) for Keras 3
files that name layers by type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jdl.nn.vgg import VGG, VGG_CONFIGS, vgg_layer_plan
from jdl.pretrained._keras_h5 import layers_by_kind
from jdl.pretrained.errors import WeightFileError


def _is_named(layers: Mapping[str, Any]) -> bool:
    """Legacy files name layers as the model does (``block1_conv1``); Keras 3 by type."""
    return any(re.fullmatch(r"block\d+_conv\d+|fc\d+|predictions", k) for k in layers)


def _positional(layers: Mapping[str, list[tuple[str, np.ndarray]]]) -> tuple[list[str], list[str]]:
    """Keras 3 conv and Dense layers holding a kernel and a bias, each in creation order."""
    groups = layers_by_kind(layers)
    convs, denses = ([n for n in groups[k] if len(layers[n]) == 2] for k in ("conv", "dense"))
    return convs, denses


def _vgg_layer_names(model: VGG) -> tuple[list[str], list[str]]:
    """A jdl VGG's conv and dense layer names in forward order (dense ends with the head)."""
    convs = [name for name, width in vgg_layer_plan(model.config) if width is not None]
    denses = [f"fc{i + 1}" for i in range(len(model.classifier))] + [type(model).head_name]
    return convs, denses


def _keras_vgg_to_jdl(
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
        jconvs, jdenses = _vgg_layer_names(model)
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


def _vgg_from_keras_weights(
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
