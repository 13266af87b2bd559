"""Safe reading and atomic writing of weight files (private).

Nothing here unpickles: safetensors files are read with the safetensors numpy API (a JSON
header and raw buffers, no code), ``.pth`` files only through ``torch.load(weights_only=True)``
(and refused outright without torch; jdl never calls :mod:`pickle`, which
``tests/pretrained/test_pickle_safety.py`` checks by scanning jdl's source). A safetensors
header is validated before the library sees it (:func:`check_safetensors_header`), so a
malformed or truncated file raises :class:`WeightFileError` naming the file and the problem.
Writes go through :func:`jdl._core.files.atomic_path`: a temporary file in the destination
folder renamed into place with :func:`os.replace`, so a crash never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.parse
import urllib.request
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


#: Bytes per element of each safetensors dtype (the format's own table).
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
}  # fmt: skip
#: The largest header the safetensors library accepts (100 MB).
MAX_SAFETENSORS_HEADER = 100_000_000


def _bad_safetensors(path: Path, size: int, what: str) -> WeightFileError:
    return WeightFileError(
        f"{str(path)!r} ({size} bytes) is not a readable safetensors file: {what}. It may be "
        "truncated (an interrupted download), damaged, or of another format; download it "
        "again or check its extension."
    )


def _check_tensor_entry(name: str, entry: Any, data_size: int) -> str | None:
    """What is wrong with one tensor's header entry, or None."""
    if not isinstance(entry, Mapping) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        return (
            f"the header entry of tensor {name!r} is {entry!r}, expected dtype, shape, data_offsets"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        return (
            f"tensor {name!r} has unknown dtype {dtype!r} (known: {', '.join(SAFETENSORS_DTYPES)})"
        )
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    if not isinstance(shape, list) or not all(map(is_int, shape)):
        return f"tensor {name!r} has shape {shape!r}, expected a list of non-negative integers"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(is_int, offsets))):
        return f"tensor {name!r} has data_offsets {offsets!r}, expected [begin, end]"
    begin, end = offsets
    needed = int(np.prod(shape, dtype=np.int64)) * SAFETENSORS_DTYPES[dtype]
    if end < begin or end - begin != needed:
        return (
            f"tensor {name!r} ({dtype}, shape {tuple(shape)}) needs {needed} bytes but its "
            f"data_offsets {offsets} span {end - begin}"
        )
    if end > data_size:
        return (
            f"tensor {name!r} ends at byte {end} of the data section, but the file holds only "
            f"{data_size} bytes of data after the header: the data section is truncated"
        )
    return None


def check_safetensors_header(path: str | os.PathLike) -> None:
    """Check a safetensors file's header before the safetensors library reads it.

    Checked: the 8-byte header length (it must fit in the file, and in safetensors' 100 MB
    limit), that the header is a JSON object, every tensor's dtype, shape and data offsets
    (consistent with each other and within the file), and the ``__metadata__`` strings.
    Nothing but the header is read, so a hostile length never allocates a huge buffer.

    Raises:
      WeightFileError: naming the file and what is wrong with it.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad_safetensors(path, size, "it is shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            what = (
                f"its header length field says {n} bytes, but only {size - 8} bytes follow "
                "it (the header is truncated, or the length is garbage)"
            )
            raise _bad_safetensors(path, size, what)
        if n > MAX_SAFETENSORS_HEADER:
            what = f"its header length {n} exceeds safetensors' limit of {MAX_SAFETENSORS_HEADER}"
            raise _bad_safetensors(path, size, what + " bytes")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad_safetensors(
            path, size, f"its {n}-byte header is not valid JSON ({err})"
        ) from err
    if not isinstance(header, dict):
        raise _bad_safetensors(
            path, size, f"its header is a JSON {type(header).__name__}, expected an object"
        )
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad_safetensors(
            path, size, f"its __metadata__ is {metadata!r:.200}, expected strings by name"
        )
    for name, entry in header.items():
        problem = None if name == "__metadata__" else _check_tensor_entry(name, entry, size - 8 - n)
        if problem:
            raise _bad_safetensors(path, size, problem)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and header metadata of a ``.safetensors`` file, as numpy arrays.

    bfloat16 tensors (which numpy lacks) are returned as float32. The header is checked
    first (:func:`check_safetensors_header`), so a malformed file -- a header length past
    the end of the file or absurdly large, a truncated or invalid JSON header, an unknown
    dtype, data offsets past the end of the file, a truncated data section -- raises a
    :class:`WeightFileError` naming the file and the problem, never a raw safetensors or
    struct error.

    Raises:
      FileNotFoundError: if there is no such file.
      WeightFileError: if the file is truncated, malformed or not a safetensors file.
    """
    from safetensors import safe_open

    path = Path(path)
    _check_exists(path)
    check_safetensors_header(path)
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


# -- downloading ----------------------------------------------------------------------

#: Bytes read at a time when downloading or hashing.
CHUNK = 1 << 20


def _content_length(stream: Any) -> int | None:
    """The size an HTTP response announces (``Content-Length``), or None."""
    headers = getattr(stream, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def fetch(source: str, dest: Path, timeout: float) -> dict[str, str]:
    """Copy ``source`` (URL or path) to ``dest`` while hashing; returns both digests.

    Raises:
      WeightFileError: the download failed, or ended before the ``Content-Length`` the
        server announced (naming the URL and both sizes).
    """
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    is_url = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source) is not None
    received = 0
    expected = None
    try:
        if is_url:
            scheme = urllib.parse.urlparse(source).scheme
            if scheme not in ("http", "https", "file"):
                raise WeightFileError(f"cannot download {source!r}: unsupported scheme {scheme!r}")
            stream = urllib.request.urlopen(source, timeout=timeout)  # noqa: S310 (scheme checked)
        else:
            stream = open(source, "rb")  # noqa: SIM115 (closed below)
        expected = _content_length(stream)
        with stream, open(dest, "wb") as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                out.write(chunk)
                received += len(chunk)
                for h in hashes.values():
                    h.update(chunk)
    except (OSError, http.client.HTTPException) as err:  # IncompleteRead is an HTTPException
        sizes = f" after {received} of {expected} bytes" if expected is not None else ""
        raise WeightFileError(f"could not download {source!r}{sizes}: {err}") from err
    if expected is not None and received != expected:
        raise WeightFileError(
            f"the download of {source!r} was cut short: expected {expected} bytes (its "
            f"Content-Length), received {received}. The partial file was discarded; try again."
        )
    return {k: h.hexdigest() for k, h in hashes.items()}


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
