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
