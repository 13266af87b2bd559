"""Safe reading and atomic writing of weight files (private).

Nothing here unpickles: safetensors files are read with the safetensors numpy API (a JSON
header and raw buffers, no code), ``.pth`` files only through ``torch.load(weights_only=True)``.
Writes go through :func:`jdl._core.files.atomic_path`: a temporary file in the destination
folder renamed into place with :func:`os.replace`, so a crash never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jdl._core.files import atomic_path, atomic_write_text
from jdl.pretrained.errors import ChecksumError, WeightFileError

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist")


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and header metadata of a ``.safetensors`` file, as numpy arrays.

    bfloat16 tensors (which numpy lacks) are returned as float32.

    Raises:
      FileNotFoundError: if there is no such file.
      WeightFileError: if the file is truncated or not a safetensors file.
    """
    from safetensors import safe_open

    path = Path(path)
    _check_exists(path)
    tensors: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as err:  # safetensors raises its own SafetensorError or OSError
        size = path.stat().st_size
        raise WeightFileError(
            f"{str(path)!r} ({size} bytes) is not a readable safetensors file: {err}. It may be "
            "truncated (an interrupted download) or of another format; download it again or "
            "check its extension."
        ) from err
    for key, value in tensors.items():
        if value.dtype.name == "bfloat16":
            tensors[key] = value.astype(np.float32)
    return tensors, metadata


def write_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, str]
) -> Path:
    """Write numpy-convertible ``tensors`` and string ``metadata`` atomically."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=dict(metadata))
    return Path(path)


def torch_available() -> bool:
    """Whether ``torch`` can be imported (it is never required)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def read_torch_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A state dict from a ``.pth`` file, through ``torch.load(weights_only=True)`` only.

    ``weights_only=True`` makes torch's restricted unpickler refuse anything but tensors and
    plain containers, so a file crafted to run code is rejected, never executed. Without
    torch installed the file is refused outright (jdl never uses plain :mod:`pickle`).

    Raises:
      WeightFileError: torch missing, a file that ``weights_only`` refuses, or a corrupt file.
    """
    path = Path(path)
    _check_exists(path)
    if not torch_available():
        raise WeightFileError(
            f"{str(path)!r} is a pickle-based PyTorch file; jdl reads those only through "
            "torch.load(weights_only=True), and torch is not installed. Convert the file to "
            "safetensors (e.g. `safetensors.torch.save_file(torch.load(p, weights_only=True), "
            "'model.safetensors')` on a machine with torch), use timm's model.safetensors "
            "from the Hugging Face hub, or install torch."
        )
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for refused globals, RuntimeError for corrupt
        raise WeightFileError(
            f"refused to load {str(path)!r}: torch.load(weights_only=True) rejected it ({err}). "
            "jdl never unpickles arbitrary objects; if you trust the file, re-save its state "
            "dict as safetensors."
        ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightFileError(
            f"{str(path)!r} holds a {type(obj).__name__}, expected a state dict (name -> tensor)"
        )
    out = {}
    for key, value in obj.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            out[str(key)] = value.numpy()
        else:
            out[str(key)] = np.asarray(value)
    return out


def is_pickle_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a pickle-based PyTorch extension."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


# -- the download cache: bare file names, and full SHA-256s recorded on first use ----------

#: Suffix of the file that holds a cached file's full SHA-256 (trust on first use).
RECORD_SUFFIX = ".sha256"


def check_file_name(name: Any, label: str) -> str:
    """``name`` if it is a bare file name (no folder, no ``..``, not absolute).

    Raises:
      ValueError: anything else, naming ``label`` (e.g. ``"HubEntry 'x'"``) and ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"{label}: the cache file name must be a non-empty bare file name, got {name!r} "
            "(set filename=, or use a URL whose path ends in a file name)"
        )
    if (
        name in (".", "..")
        or any(sep in name for sep in ("/", "\\", "\0"))
        or os.path.isabs(name)
        or os.path.splitdrive(name)[0]
        or Path(name).name != name
    ):
        raise ValueError(
            f"{label}: the cache file name must be a bare file name (no folders, no '..', not "
            f"absolute), got {name!r}; files are written only inside the cache folder"
        )
    return name


def record_path(path: str | os.PathLike) -> Path:
    """Where a cached file's full SHA-256 is recorded: ``<file>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def read_record(path: Path, sha256_prefix: str | None) -> str | None:
    """The full SHA-256 recorded for ``path``; None without a record, or with one that does
    not start with ``sha256_prefix`` (recorded for an earlier entry with another checksum).

    Raises:
      ChecksumError: the record is not 64 hex digits.
    """
    record = record_path(path)
    try:
        words = record.read_text().split()
    except FileNotFoundError:
        return None
    digest = words[0].lower() if words else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ChecksumError(
            f"{str(record)!r} should hold the SHA-256 recorded when {str(path)!r} was first "
            f"verified (64 hex digits), found {' '.join(words)[:80]!r}; delete both files to "
            "download the checkpoint again"
        )
    if sha256_prefix is not None and not digest.startswith(sha256_prefix.lower()):
        return None
    return digest


def write_record(path: Path, digest: str) -> Path:
    """Record ``digest`` as ``path``'s full SHA-256, atomically (the ``sha256sum`` format)."""
    return atomic_write_text(record_path(path), f"{digest}  {path.name}\n")


def changed_error(path: Path, recorded: str, found: str) -> ChecksumError:
    """The error for a cached file whose SHA-256 is no longer the one recorded for it."""
    return ChecksumError(
        f"{str(path)!r} changed since it was first verified: expected sha256 {recorded} "
        f"(recorded in {str(record_path(path))!r}), found sha256 {found}. The file was "
        "modified after download (tampering or disk corruption) and was left in place for "
        "inspection; delete both files to trust a fresh download."
    )
