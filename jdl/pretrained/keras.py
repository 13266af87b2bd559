"""Keras applications weight files (``.h5`` / ``.weights.h5``) -> jdl VGG variables.

Two on-disk layouts are read with :mod:`h5py` (no Keras or TensorFlow needed):

- **legacy HDF5** (Keras 2 ``save_weights("x.h5")``, the files Keras applications
  download, and ``model_weights`` inside a whole-model ``.h5``): the root lists
  ``layer_names``; group ``<layer>`` lists ``weight_names`` such as ``"fc1/kernel:0"``.
- **Keras 3** ``.weights.h5``: ``layers/<layer>/vars/0, 1, ...`` in creation order
  (kernel then bias; BatchNorm gamma, beta, moving mean, moving variance).

Keras' layouts are already jdl's: conv kernels are HWIO and Dense kernels ``(in, out)``, and
``Flatten`` of channels-last maps flattens ``(height, width, channels)``, like :class:`jdl.nn.VGG`.
So Keras ``VGG16``'s ``block{b}_conv{c}``, ``fc1``, ``fc2`` map by name and ``predictions``
becomes jdl's ``head``. Keras' ``preprocess_input`` for these models is the "caffe" mode
(BGR, mean subtracted; :data:`jdl.pretrained.preprocess.KERAS_CAFFE`).

Keras ``ResNet50`` is ResNet **v1** (stride on the first 1x1 conv of a bottleneck, conv
biases, BatchNorm epsilon 1.001e-5), which jdl's v1.5 :class:`~jdl.nn.ResNet` cannot
represent exactly: :func:`from_keras` refuses such files with that reason
(:func:`read_keras_weights` still reads them layer by layer).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jdl.nn.vgg import VGG
from jdl.pretrained._result import Pretrained
from jdl.pretrained._tree import merge_into
from jdl.pretrained.errors import WeightFileError

__all__ = [
    "from_keras",
    "keras_vgg_to_jdl",
    "read_keras_weights",
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
                    layers[prefix.rsplit("/", 1)[-1]] = values
            else:
                visit(item, f"{prefix}/{key}" if prefix else key)

    visit(group, "")
    return layers


def read_keras_weights(path: str | os.PathLike) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The weights of a Keras ``.h5`` / ``.weights.h5`` file, by layer, in file order.

    Returns:
      ``{layer_name: [(weight_name, array), ...]}``. Legacy files give the weight names
      (``"kernel"``, ``"bias"``, ``"gamma"``, ...); Keras 3 files give their indices
      (``"0"``, ``"1"``, ...), which follow the layer's creation order.

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


def _positional(
    layers: Mapping[str, list[tuple[str, np.ndarray]]],
) -> tuple[list[str], list[str], list[str]]:
    """Keras 3 layers with vars, split into conv and dense (in creation order) and others."""
    convs, denses, other = [], [], []
    for name, weights in layers.items():
        ndims = [w.ndim for _, w in weights]
        if len(weights) == 2 and ndims == [4, 1]:
            convs.append(name)
        elif len(weights) == 2 and ndims == [2, 1]:
            denses.append(name)
        else:
            other.append(name)
    order = lambda n: (re.sub(r"_\d+$", "", n), _suffix(n))  # noqa: E731
    return sorted(convs, key=order), sorted(denses, key=order), other


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
        convs, denses, _ = _positional(layers)
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


def _refuse_resnet(layers: Mapping[str, Any]) -> None:
    if "conv1_conv" in layers or "conv2_block1_1_conv" in layers:
        raise WeightFileError(
            "this is a Keras ResNet50 weight file; Keras' ResNet50 is ResNet v1 (stride on the "
            "first 1x1 conv of each downsampling block), which jdl's v1.5 ResNet cannot "
            "reproduce exactly, so jdl does not load it. Use torchvision/timm ResNet-50 weights "
            "(jdl.pretrained.from_torchvision) instead."
        )


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
        convs_, denses, _ = _positional(layers)
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


def from_keras(
    path: str | os.PathLike,
    model: VGG | None = None,
    *,
    strict: bool = True,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Pretrained:
    """Load Keras ``VGG16`` / ``VGG19`` weights (``.h5`` or ``.weights.h5``) into a jdl VGG.

    Args:
      path: the weight file (Keras applications' ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``,
        or a file written by ``model.save_weights(...)``).
      model: the :class:`~jdl.nn.VGG` to load into; by default the one the file describes
        (:func:`vgg_from_keras_weights`; e.g. ``vgg16()`` with ``dropout=0``).
      strict: raise :class:`~jdl.pretrained.WeightMismatchError` listing every mismatch;
        ``False`` loads what fits and reports the rest (e.g. for ``include_top=False`` files).
      input_shape: a batch shape (default ``(1, 224, 224, 3)``); VGG's ``fc1`` size depends on it.
      seed: initial values for variables not loaded (``strict=False``).

    Returns:
      A :class:`~jdl.pretrained.Pretrained`; ``info`` is Keras' caffe preprocessing.
    """
    layers = read_keras_weights(path)
    _refuse_resnet(layers)
    if model is None:
        model = vgg_from_keras_weights(layers)
    flat, unmapped = keras_vgg_to_jdl(layers, model)
    variables, report = merge_into(
        model,
        flat,
        input_shape=input_shape or (1, 224, 224, 3),
        strict=strict,
        seed=seed,
        unexpected=unmapped,
        source=f"Keras weights {str(path)!r}",
    )
    from jdl.pretrained.preprocess import KERAS_CAFFE

    return Pretrained(model=model, variables=variables, report=report, info=dict(KERAS_CAFFE))
