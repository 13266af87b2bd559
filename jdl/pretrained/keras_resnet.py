"""Keras ``ResNet50`` / ``101`` / ``152`` (v1) weights -> :class:`jdl.nn.ResNet` variables.

See :mod:`jdl.pretrained.keras` for the layer names, the folding of conv biases into the
BatchNorms, and the positional order of Keras 3 files without layer names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jdl.nn.resnet import Bottleneck, ResNet
from jdl.pretrained._keras_h5 import layer_kind, layers_by_kind
from jdl.pretrained.errors import WeightFileError

_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
_RESNET_LAYER = re.compile(r"conv(\d+)_block(\d+)_([0-3])_(conv|bn)")
#: BatchNorm epsilon of Keras' ResNets.
KERAS_BN_EPSILON = 1.001e-5


def _is_named_resnet(layers: Mapping[str, Any]) -> bool:
    return "conv1_conv" in layers or any(_RESNET_LAYER.fullmatch(k) for k in layers)


def is_keras_resnet(layers: Mapping[str, list[tuple[str, np.ndarray]]]) -> bool:
    """Whether Keras layers are a ResNet's.

    True for ResNet layer names or (Keras 3 files without names) BatchNorm layers, which
    VGGs lack.
    """
    return _is_named_resnet(layers) or any(layer_kind(w) == "bn" for w in layers.values() if w)


def refuse_resnet_v2(layers: Mapping[str, Any]) -> None:
    """Raise :class:`~jdl.pretrained.WeightFileError` for a Keras ResNet V2 (pre-activation)."""
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
    groups = layers_by_kind(layers)
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


def _keras_resnet_to_jdl(
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
        :func:`_resnet_from_keras_weights` ``(layers)``.

    Returns:
      ``(flat, unmapped)``: ``{"params/layer1_0/conv1/kernel": ..., "batch_stats/bn1/mean":
      ...}`` and the ``"layer/weight"`` names that fit no ResNet variable.

    Raises:
      ValueError: ``model`` is not a Bottleneck ResNet (Keras' ResNets all are).
      WeightFileError: the layers do not describe a Keras ResNet (when ``model`` is None).
    """
    if model is None:
        model = _resnet_from_keras_weights(layers)
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
        module, kind = _resnet_module(layer, head), layer_kind(weights)
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


def _resnet_from_keras_weights(
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
        block_cls=Bottleneck, stride_in_1x1=True, bn_epsilon=KERAS_BN_EPSILON
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
        groups = layers_by_kind(layers)
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
