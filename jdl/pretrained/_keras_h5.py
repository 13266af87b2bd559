"""Reading Keras ``.h5`` / ``.weights.h5`` files with :mod:`h5py`, and sorting their layers.

Private: :func:`read_keras_weights` is public as :func:`jdl.pretrained.read_keras_weights`;
the layer helpers serve :mod:`jdl.pretrained.keras_vgg` and :mod:`jdl.pretrained.keras_resnet`.
See :mod:`jdl.pretrained.keras` for the two on-disk layouts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jdl.pretrained.errors import WeightFileError


def _decode(name: Any) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


class _Malformed(Exception):
    """An HDF5 file of unexpected structure; the message names the group or dataset."""


def _dataset(group: Any, name: str, where: str) -> np.ndarray:
    """The array of dataset ``name`` of ``group``, or :class:`_Malformed` naming ``where``."""
    import h5py

    item = group.get(name)
    if item is None:
        raise _Malformed(f"{where} lists weight {name!r}, but the file has no such dataset")
    if not isinstance(item, h5py.Dataset):
        raise _Malformed(f"{where}: weight {name!r} is a {type(item).__name__}, not a dataset")
    return np.asarray(item)


def _legacy_layers(group: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer in (_decode(n) for n in group.attrs["layer_names"]):
        g = group.get(layer)
        if g is None or not hasattr(g, "keys"):
            raise _Malformed(
                f"layer {layer!r} is listed in 'layer_names' but the file has no group {layer!r}"
            )
        names = [_decode(n) for n in g.attrs.get("weight_names", [])]
        where = f"layer {layer!r}"
        layers[layer] = [(n.rsplit("/", 1)[-1].split(":")[0], _dataset(g, n, where)) for n in names]
    return layers


def _keras3_layers(group: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}

    def visit(g: Any, prefix: str) -> None:
        for key in g:
            item = g[key]
            if not hasattr(item, "keys"):
                continue
            if key == "vars":
                where = f"group 'layers/{prefix}/vars'"
                if not all(k.isdigit() for k in item):
                    raise _Malformed(
                        f"{where} holds {sorted(item)[:6]}, expected datasets named 0, 1, ..."
                    )
                values = [(k, _dataset(item, k, where)) for k in sorted(item, key=int)]
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
      WeightFileError: not an HDF5 file, truncated, of no known Keras layout, without any
        weights, or of unexpected structure (a layer listed in ``layer_names`` without its
        group, a listed weight without its dataset, ``vars`` not numbered); the message
        names the file and the layer or dataset.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist")
    size = path.stat().st_size
    if not h5py.is_hdf5(path):
        raise WeightFileError(
            f"{str(path)!r} ({size} bytes) is not a readable HDF5 weight file: it has no HDF5 "
            "signature (not an HDF5 file at all, despite its name; or an empty download)"
        )
    layers = None
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                layers = _legacy_layers(f)
            elif "model_weights" in f and "layer_names" in f["model_weights"].attrs:
                layers = _legacy_layers(f["model_weights"])
            elif "layers" in f:
                layers = _keras3_layers(f["layers"])
            top = ", ".join(list(f.keys())[:8]) or "(nothing)"
    except _Malformed as err:
        raise WeightFileError(
            f"{str(path)!r} is not a well-formed Keras weight file: {err}"
        ) from err
    except (OSError, KeyError, ValueError) as err:
        raise WeightFileError(
            f"{str(path)!r} ({size} bytes) is not a readable HDF5 weight file: {err}. It may "
            "be truncated (an interrupted download); download it again."
        ) from err
    if layers is None:
        raise WeightFileError(
            f"{str(path)!r} is an HDF5 file but not Keras weights: expected a 'layer_names' "
            f"attribute (legacy .h5) or a 'layers' group (Keras 3 .weights.h5), found {top}"
        )
    if not any(layers.values()):
        raise WeightFileError(
            f"{str(path)!r} is a Keras weight file without any weights (layers: "
            f"{', '.join(list(layers)[:8]) or 'none'})"
        )
    return layers


#: Keras layer names (VGG's, ResNet's, and Keras 3's by-type names) and the kind they are.
_NAMED_KINDS = (
    ("conv", re.compile(r"block\d+_conv\d+|conv1_conv|conv\d+_block\d+_\d+_conv|conv2d(_\d+)?")),
    ("bn", re.compile(r"conv1_bn|conv\d+_block\d+_\d+_bn|batch_normalization(_\d+)?")),
    ("dense", re.compile(r"fc\d+|predictions|dense(_\d+)?")),
)
_KIND_WANTS = {
    "conv": "a conv kernel (rank 4) and optionally a bias (one value per output channel)",
    "dense": "a Dense kernel (rank 2) and optionally a bias (one value per output)",
    "bn": "four vectors of one length (gamma, beta, moving mean, moving variance)",
}


def _fits(kind: str, arrays: list[np.ndarray]) -> bool:
    if kind == "bn":
        return (
            len(arrays) == 4
            and all(a.ndim == 1 for a in arrays)
            and len({a.shape for a in arrays}) == 1
        )
    rank = 4 if kind == "conv" else 2
    if not 1 <= len(arrays) <= 2 or arrays[0].ndim != rank:
        return False
    return len(arrays) == 1 or arrays[1].shape == (arrays[0].shape[-1],)


def check_layer_structure(
    layers: Mapping[str, list[tuple[str, np.ndarray]]], path: str | os.PathLike
) -> None:
    """Check that each conv, Dense and BatchNorm layer (known by its Keras name) holds the
    weights such a layer has, in number and rank, and with consistent sizes.

    Raises:
      WeightFileError: naming the file, the layer, what it should hold and what it holds.
    """
    for layer, weights in layers.items():
        kind = next((k for k, pattern in _NAMED_KINDS if pattern.fullmatch(layer)), None)
        if kind is None or not weights or _fits(kind, [w for _, w in weights]):
            continue
        found = ", ".join(f"{n} {tuple(w.shape)}" for n, w in weights)
        raise WeightFileError(
            f"{str(path)!r}: layer {layer!r} should hold {_KIND_WANTS[kind]}; it holds "
            f"{len(weights)} weight(s): {found}. The file is damaged or not what its layer "
            "names say."
        )


def _suffix(name: str) -> int:
    m = re.search(r"_(\d+)$", name)
    return int(m[1]) if m else 0


def layer_kind(weights: list[tuple[str, np.ndarray]]) -> str | None:
    """``"conv"``, ``"dense"`` or ``"bn"`` from a layer's array ranks, else None."""
    ndims = [w.ndim for _, w in weights]
    if ndims in ([4, 1], [4]):
        return "conv"
    if ndims in ([2, 1], [2]):
        return "dense"
    if ndims == [1, 1, 1, 1]:
        return "bn"
    return None


def layers_by_kind(
    layers: Mapping[str, list[tuple[str, np.ndarray]]],
) -> dict[str, list[str]]:
    """Layers with weights grouped by kind, each group in Keras' order (``conv2d_10`` last)."""
    order = lambda n: (re.sub(r"_\d+$", "", n), _suffix(n))  # noqa: E731
    groups: dict[str, list[str]] = {"conv": [], "bn": [], "dense": [], "other": []}
    for name, weights in layers.items():
        if weights:
            groups[layer_kind(weights) or "other"].append(name)
    return {k: sorted(v, key=order) for k, v in groups.items()}
