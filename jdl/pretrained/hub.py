"""Known checkpoints, downloaded to a cache and verified before use.

Each :class:`HubEntry` names a file (URL and checksum), how to read it (``format``), and what
its model expects (input size, mean/std, channel order, number of classes), like timm's
pretrained configs. :func:`download` fetches a file with :mod:`urllib` (``https://``,
``http://`` and ``file://`` URLs, or a local path as ``source``) into a temporary file in the
cache folder while hashing it, and moves it into place only if the hash matches; on a
mismatch the temporary file is deleted and :class:`~jdl.pretrained.ChecksumError` says so.
A cached file is re-hashed before every use (see below).

Checksums: an entry carries a ``sha256`` (the full 64 hex digits, or, where that is all the
publisher gives, a prefix of at least 8) or an ``md5``. Two publishers give only weak ones:

- torchvision publishes the first 8 hex digits of each file's SHA-256 (in its file name) and
  checks only those: 32 bits, enough to catch a truncated or corrupt download, not a file
  crafted to match;
- Keras applications publish and check an MD5, which collisions are easy to make for.

For such entries jdl trusts the file on first use: once a download passes the published
check, its full SHA-256 is recorded atomically in ``<file>.sha256`` beside it (the format of
``sha256sum``), and every later use re-hashes the cached file, and any later download of it,
against that full hash, raising :class:`~jdl.pretrained.ChecksumError` (naming the file, the
recorded and the found hash) if it changed. Register your own files with full SHA-256 hashes,
which need no record.

Each entry's cache file name (``filename``, or the URL's last component) must be a bare file
name: no folders, no ``..``, not absolute; entries that break this are refused when they are
created, registered and used, so nothing is ever written outside the cache folder.

The cache folder is ``$JDL_PRETRAINED_DIR``, else ``$XDG_CACHE_HOME/jdl/pretrained`` (an
absolute ``XDG_CACHE_HOME`` only: the XDG spec says to ignore a relative one), else
``~/.cache/jdl/pretrained``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from jdl._core.cache import cache_dir as _cache_dir
from jdl._core.files import atomic_path
from jdl.pretrained import _files
from jdl.pretrained._files import fetch as _fetch
from jdl.pretrained.errors import ChecksumError
from jdl.pretrained.keras_resnet import KERAS_BN_EPSILON
from jdl.pretrained.preprocess import KERAS_CAFFE, TORCHVISION

__all__ = [
    "REGISTRY",
    "HubEntry",
    "available",
    "cache_dir",
    "download",
    "file_digest",
    "register",
]

_CHUNK = _files.CHUNK
#: Environment variable that overrides the download cache folder.
_ENV_VAR = "JDL_PRETRAINED_DIR"


@dataclasses.dataclass(frozen=True)
class HubEntry:
    """A known checkpoint.

    Attributes:
      name: registry name, e.g. ``"resnet18.tv_in1k"``.
      url: where to download it (``https://``, ``http://`` or ``file://``).
      format: how to read it: ``"torchvision"``, ``"timm"``, ``"keras"`` or ``"jdl"``.
      sha256: hex SHA-256 of the file (full, or a published prefix of >= 8 digits; a prefix
        is completed by trust on first use, see the module docstring).
      md5: hex MD5 instead, for publishers that give only that (Keras applications); also
        completed by a full SHA-256 recorded on first use.
      filename: name in the cache (default: the URL's last component); a bare file name,
        no folders, no ``..``, not absolute.
      num_classes: number of classes of the head.
      input_size: side of the square input images.
      mean: per-channel mean to subtract (in the file's value scale and channel order).
      std: per-channel std to divide by.
      channel_order: ``"RGB"`` or ``"BGR"``.
      preprocessing: the full preprocessing recipe (see :mod:`jdl.pretrained.preprocess`).
      needs_torch: the file is pickle-based; reading it needs torch (``weights_only=True``).
      description: one line for humans.
      arch: the :func:`jdl.nn.get_model` name of the model the weights are for (e.g.
        ``"resnet50"``); :func:`jdl.pretrained.load` builds it by this name. ``None``: the
        model the file describes.
      arch_overrides: fields :func:`jdl.nn.get_model` sets on top of ``arch``'s defaults and
        ``num_outputs=num_classes`` (e.g. Keras' ResNet v1 settings).
    """

    name: str
    url: str
    format: str
    sha256: str | None = None
    md5: str | None = None
    filename: str | None = None
    num_classes: int = 1000
    input_size: int = 224
    mean: tuple[float, ...] = TORCHVISION["mean"]
    std: tuple[float, ...] = TORCHVISION["std"]
    channel_order: str = "RGB"
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(TORCHVISION))
    needs_torch: bool = False
    description: str = ""
    arch: str | None = None
    arch_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in ("torchvision", "timm", "keras", "jdl"):
            raise ValueError(
                f"HubEntry {self.name!r}: format must be torchvision, timm, keras or jdl, got "
                f"{self.format!r}"
            )
        if (self.sha256 is None) == (self.md5 is None):
            raise ValueError(f"HubEntry {self.name!r} needs exactly one of sha256= or md5=")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{8,64}", self.sha256):
            raise ValueError(
                f"HubEntry {self.name!r}: sha256 must be 8 to 64 hex digits, got {self.sha256!r}"
            )
        if self.md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", self.md5):
            raise ValueError(f"HubEntry {self.name!r}: md5 must be 32 hex digits")
        if self.filename is not None:  # "" would silently fall back to the URL's name
            _files.check_file_name(self.filename, f"HubEntry {self.name!r}")
        _files.check_file_name(self.cache_name, f"HubEntry {self.name!r}")
        if self.arch is not None:
            from jdl.nn.registry import list_models

            if self.arch not in list_models():
                raise ValueError(
                    f"HubEntry {self.name!r}: arch {self.arch!r} is not a jdl.nn.get_model name "
                    "(see jdl.nn.list_models())"
                )

    def build_model(self, **overrides: Any) -> Any:
        """The model the weights are for: ``jdl.nn.get_model(arch, num_outputs=num_classes, ...)``.

        ``overrides`` come on top of :attr:`arch_overrides`.

        Raises:
          ValueError: the entry has no ``arch``.
        """
        if self.arch is None:
            raise ValueError(f"HubEntry {self.name!r} has no arch to build a model from")
        from jdl.nn.registry import get_model

        settings = {"num_outputs": self.num_classes, **self.arch_overrides, **overrides}
        return get_model(self.arch, **settings)

    @property
    def cache_name(self) -> str:
        """File name in the cache."""
        return self.filename or Path(urllib.parse.urlparse(self.url).path).name

    @property
    def info(self) -> dict[str, Any]:
        """What a model loaded from this entry expects of its inputs (``Pretrained.info``)."""
        return {
            **self.preprocessing,
            "name": self.name,
            "num_classes": self.num_classes,
            "input_size": self.input_size,
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "channel_order": self.channel_order,
        }


def _torchvision(arch: str, digest: str, top1: float) -> HubEntry:
    return HubEntry(
        name=f"{arch}.tv_in1k",
        arch=arch,
        url=f"https://download.pytorch.org/models/{arch}-{digest}.pth",
        format="torchvision",
        sha256=digest,
        needs_torch=True,
        description=f"torchvision {arch} IMAGENET1K_V1 (top-1 {top1} %); .pth, needs torch",
    )


def _keras(
    arch: str, md5: str, title: str, folder: str | None = None, **overrides: Any
) -> HubEntry:
    """A Keras applications file; ``md5`` is the ``file_hash`` Keras' own source checks."""
    return HubEntry(
        name=f"{arch}.keras_in1k",
        arch=arch,
        arch_overrides=overrides,
        url=(
            "https://storage.googleapis.com/tensorflow/keras-applications/"
            f"{folder or arch}/{arch}_weights_tf_dim_ordering_tf_kernels.h5"
        ),
        format="keras",
        md5=md5,
        mean=KERAS_CAFFE["mean"],
        std=KERAS_CAFFE["std"],
        channel_order="BGR",
        preprocessing=dict(KERAS_CAFFE),
        description=f"Keras applications {title} ImageNet weights (caffe preprocessing)",
    )


#: The known checkpoints, by name. Add your own with :func:`register`.
REGISTRY: dict[str, HubEntry] = {
    e.name: e
    for e in (
        _torchvision("resnet18", "f37072fd", 69.758),
        _torchvision("resnet34", "b627a593", 73.314),
        _torchvision("resnet50", "0676ba61", 76.130),
        _torchvision("resnet101", "63fe2227", 77.374),
        _torchvision("resnet152", "394f9c45", 78.312),
        # Keras' VGGs have no dropout; its ResNets are v1 with BatchNorm epsilon 1.001e-5.
        _keras("vgg16", "64373286793e3c8b2b4e3219cbf3544b", "VGG16", dropout=0.0),
        _keras("vgg19", "cbe5617147190e668d6c5d5026f83318", "VGG19", dropout=0.0),
        # keras/src/applications/resnet.py, WEIGHTS_HASHES["resnet50"][0] (with top).
        _keras(
            "resnet50",
            "2cb95161c43110f7111970584f804107",
            "ResNet50 (v1)",
            "resnet",
            stride_in_1x1=True,
            bn_epsilon=KERAS_BN_EPSILON,
        ),
    )
}


def register(entry: HubEntry, *, overwrite: bool = False) -> HubEntry:
    """Add a checkpoint to ``hub.REGISTRY`` so :func:`jdl.pretrained.load` knows its name.

    Raises:
      ValueError: if the name is taken and ``overwrite`` is false, or the entry's cache file
        name is not a bare file name.
      TypeError: ``entry`` is not a :class:`HubEntry`.
    """
    if not isinstance(entry, HubEntry):
        raise TypeError(f"register expects a HubEntry, got {type(entry).__name__}")
    _files.check_file_name(entry.cache_name, f"HubEntry {entry.name!r}")
    if entry.name in REGISTRY and not overwrite and REGISTRY[entry.name] != entry:
        raise ValueError(f"a checkpoint named {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    return entry


def available() -> list[str]:
    """The registered checkpoint names, sorted."""
    return sorted(REGISTRY)


def cache_dir() -> Path:
    """The download cache folder (see the module docstring)."""
    return _cache_dir("pretrained", _ENV_VAR)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _matches(entry: HubEntry, digests: dict[str, str]) -> bool:
    if entry.sha256 is not None:
        return digests["sha256"].startswith(entry.sha256.lower())
    return digests["md5"] == entry.md5.lower()


def _expected(entry: HubEntry) -> str:
    return f"sha256 {entry.sha256}" if entry.sha256 else f"md5 {entry.md5}"


def _cache_file(folder: Path, entry: HubEntry) -> Path:
    """``folder / entry.cache_name``, refusing any name that would leave ``folder``."""
    final = folder / _files.check_file_name(entry.cache_name, f"HubEntry {entry.name!r}")
    if final.parent != folder:  # cannot happen for a bare name; never write elsewhere
        raise ValueError(f"HubEntry {entry.name!r}: {str(final)!r} is outside {str(folder)!r}")
    return final


def _is_weak(entry: HubEntry) -> bool:
    """Whether the entry's checksum is weaker than a full SHA-256 (a prefix, or MD5)."""
    return entry.sha256 is None or len(entry.sha256) < 64


def download(
    entry: HubEntry | str,
    *,
    source: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    timeout: float = 60.0,
) -> Path:
    """The verified local copy of a registered checkpoint, downloading it if needed.

    Entries with a full SHA-256 are checked against it every time. Entries with a weaker
    checksum (torchvision's 8-hex-digit SHA-256 prefix, 32 bits; Keras' MD5) are trusted on
    first use: once the file passes that check, its full SHA-256 is written atomically to
    ``<file>.sha256`` beside it, and every later call checks the file, and any new download
    of it, against that full hash.

    Args:
      entry: a :class:`HubEntry` or a registered name.
      source: fetch from here instead of the entry's URL (a mirror URL, a ``file://`` URL
        or a local path); the checksum is verified all the same.
      cache: the cache folder (default :func:`cache_dir`).
      timeout: network timeout in seconds.

    Returns:
      The path of the cached file; its checksum matched just now.

    Raises:
      ChecksumError: the download's checksum differs from the entry's (the download was
        deleted and nothing was written under the cache name), or the cached file (or a new
        download) differs from the full SHA-256 recorded when it was first verified.
      WeightFileError: the download failed, or was cut short (fewer bytes than the server's
        ``Content-Length``; the message names the URL and both sizes). Nothing is left in
        the cache: the download goes to a temporary file, renamed to the cache name only
        once complete and verified.
      ValueError: the entry's cache file name is not a bare file name.
      KeyError: an unknown name.
    """
    if isinstance(entry, str):
        if entry not in REGISTRY:
            raise KeyError(
                f"unknown pretrained checkpoint {entry!r}; known: {', '.join(available())} "
                "(or register one with jdl.pretrained.hub.register)"
            )
        entry = REGISTRY[entry]
    folder = Path(cache) if cache is not None else cache_dir()
    final = _cache_file(folder, entry)
    folder.mkdir(parents=True, exist_ok=True)
    recorded = _files.read_record(final, entry.sha256) if _is_weak(entry) else None
    if final.is_file():
        digests = {"sha256": file_digest(final, "sha256"), "md5": file_digest(final, "md5")}
        if recorded is not None and digests["sha256"] != recorded:
            raise _files.changed_error(final, recorded, digests["sha256"])
        if _matches(entry, digests):
            if _is_weak(entry) and recorded is None:
                with contextlib.suppress(OSError):  # a read-only cache: checked all the same
                    _files.write_record(final, digests["sha256"])
            return final
        final.unlink()  # stale, or a file damaged before any record: fetch it again
        recorded = None
    origin = os.fspath(source) if source is not None else entry.url
    with atomic_path(final) as tmp:
        digests = _fetch(origin, tmp, timeout)
        if not _matches(entry, digests):
            raise ChecksumError(
                f"checksum mismatch for {entry.name!r} downloaded from {origin!r}: expected "
                f"{_expected(entry)}, got sha256 {digests['sha256']} (md5 {digests['md5']}). "
                "The file was discarded; check the source (a truncated download, a changed "
                "file or a wrong mirror) and try again."
            )
        if recorded is not None and digests["sha256"] != recorded:
            raise ChecksumError(
                f"the download of {entry.name!r} from {origin!r} passes the entry's "
                f"{_expected(entry)} but is not the file first verified under "
                f"{str(final)!r}: expected sha256 {recorded} (recorded in "
                f"{str(_files.record_path(final))!r}), got sha256 {digests['sha256']}. The "
                "file was discarded; delete the record to trust this one."
            )
    if _is_weak(entry) and recorded is None:
        _files.write_record(final, digests["sha256"])
    return final
