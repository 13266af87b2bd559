"""``jdl.pretrained.load``: one entry point for registered names and local weight files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from jdl.pretrained import _files, hub
from jdl.pretrained._result import Pretrained
from jdl.pretrained.errors import WeightFileError
from jdl.pretrained.jdl_format import _is_jdl_file, load_jdl
from jdl.pretrained.keras import from_keras
from jdl.pretrained.surgery import replace_head
from jdl.pretrained.torch import from_torchvision

__all__ = ["detect_format", "load"]

#: The ``format=`` values :func:`load` accepts.
_FORMATS = ("jdl", "torchvision", "timm", "keras")


def detect_format(path: str | os.PathLike) -> str:
    """Guess a weight file's format from its extension and (for safetensors) its header.

    ``.safetensors`` -> ``"jdl"`` if written by :func:`jdl.pretrained.save`, else
    ``"torchvision"``; ``.h5`` / ``.hdf5`` / ``.keras`` -> ``"keras"``; ``.pth``/``.pt``/``.bin``
    -> ``"torchvision"``.

    Raises:
      WeightFileError: for any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        return "jdl" if _is_jdl_file(path) else "torchvision"
    if suffix in (".h5", ".hdf5"):
        return "keras"
    if suffix in _files.PICKLE_SUFFIXES:
        return "torchvision"
    raise WeightFileError(
        f"cannot tell the format of {str(path)!r} from its extension; pass format= (one of "
        f"{', '.join(_FORMATS)})"
    )


def load(
    name: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    model: Any = None,
    format: str | None = None,
    strict: bool = True,
    cache_dir: str | os.PathLike | None = None,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    num_outputs: int | None = None,
) -> Pretrained:
    """Load pretrained weights by registered name or from a local file.

    Args:
      name: a registered checkpoint (``jdl.pretrained.available()``, e.g.
        ``"resnet50.tv_in1k"``, ``"vgg16.keras_in1k"``), downloaded to the cache and verified;
        or the path of a weight file (jdl ``.safetensors``, torchvision/timm ``.safetensors``
        or ``.pth``, Keras ``.h5``).
      source: for a registered name, fetch from here instead of its URL (a mirror, a
        ``file://`` URL, or a local copy); the checksum is still verified.
      model: the module to load into; by default, for a registered name, the entry's
        ``arch`` built with :func:`jdl.nn.get_model`
        (:meth:`~jdl.pretrained.HubEntry.build_model`), else the model the weights describe.
      format: ``"jdl"``, ``"torchvision"``, ``"timm"`` or ``"keras"``; default from the
        registry or the file (:func:`detect_format`).
      strict: raise :class:`~jdl.pretrained.WeightMismatchError` listing every missing,
        unexpected or shape-mismatched weight; ``False`` loads what fits and reports the rest.
      cache_dir: download cache (default ``$JDL_PRETRAINED_DIR``, else
        ``$XDG_CACHE_HOME/jdl/pretrained``).
      input_shape: a batch shape for the shape check (default that of the weights).
      seed: initial values of variables not loaded (``strict=False``), and of a new head.
      num_outputs: the number of outputs wanted. When it differs from the checkpoint's, the
        weights are loaded with the checkpoint's head, which is then dropped for a freshly
        initialised one of ``num_outputs`` outputs (:func:`~jdl.pretrained.replace_head`;
        ``info["num_classes"]`` becomes ``num_outputs``, ``info["checkpoint_num_classes"]``
        keeps the old count), as timm does. Heads whose size depends on the input (VGG, CNN)
        need ``input_shape``, except for registered torchvision/timm/Keras checkpoints
        (whose ``input_size`` is used).

    Returns:
      A :class:`~jdl.pretrained.Pretrained` (``model``, ``variables``, ``report``, ``info``
      with the input size, mean/std and channel order the weights expect).

    Raises:
      ChecksumError: a download whose checksum does not match (the file was discarded).
      WeightFileError: a corrupt or truncated file, or a ``.pth`` that cannot be read safely.
      WeightMismatchError: weights that do not fit ``model`` (``strict=True``).
      FileNotFoundError: ``name`` is neither registered nor an existing file.

    Example:
      >>> # p = jdl.pretrained.load("vgg16.keras_in1k")       # downloads once, then cached
      >>> # x = jdl.pretrained.preprocess.preprocess(images, p.info)
      >>> # logits = p.model.apply(p.variables, x, train=False)
      >>> # p = jdl.pretrained.load("resnet50.tv_in1k", num_outputs=10)  # a new 10-class fc
    """
    entry = hub.REGISTRY.get(os.fspath(name)) if isinstance(name, str) else None
    if entry is not None:
        path = hub.download(entry, source=source, cache=cache_dir)
        fmt = format or entry.format
        if model is None and entry.arch is not None:
            model = entry.build_model()
    else:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(name)!r} is neither a registered checkpoint ({', '.join(hub.available())})"
                " nor an existing weight file"
            )
        if source is not None:
            raise ValueError("source= applies to registered names only; pass the path as name")
        fmt = format or detect_format(path)
    if fmt not in _FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; known: {', '.join(_FORMATS)}")
    kwargs = dict(strict=strict, input_shape=input_shape, seed=seed)
    if fmt == "jdl":
        result = load_jdl(path, model, **kwargs)
    elif fmt == "keras":
        result = from_keras(path, model, **kwargs)
    else:
        result = from_torchvision(path, model, **kwargs)
    if entry is not None:
        result = dataclasses.replace(result, info={**result.info, **entry.info})
    if num_outputs is not None and num_outputs != getattr(result.model, "num_outputs", None):
        result = _new_head(result, int(num_outputs), input_shape, entry, seed)
    return result


def _new_head(
    result: Pretrained,
    num_outputs: int,
    input_shape: tuple[int, ...] | None,
    entry: hub.HubEntry | None,
    seed: int,
) -> Pretrained:
    """``result`` with its head replaced by a fresh one of ``num_outputs`` outputs."""
    if input_shape is None and entry is not None and entry.format != "jdl":
        input_shape = (1, entry.input_size, entry.input_size, 3)  # an ImageNet-style image
    model, variables = replace_head(
        result.model, result.variables, num_outputs, input_shape=input_shape, seed=seed
    )
    info = dict(result.info)
    info["checkpoint_num_classes"] = info.get("num_classes", result.model.num_outputs)
    info["num_classes"] = num_outputs
    return dataclasses.replace(result, model=model, variables=variables, info=info)
