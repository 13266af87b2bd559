"""Save a trained model for inference and load it back by one call: jdl's saved-model folder.

:func:`save_model` writes one folder::

    model/
        model.json         what the model is and what the weights must be (JSON):
                           {"format": "jdl-model", "format_version": 1,
                            "jdl_version": "0.1.0", "model": {"class": "jdl.nn.mlp:MLP",
                            "fields": {"widths": {"__tuple__": [64]}, ...}},
                            "variables": {"params/Dense_0/kernel":
                                          {"shape": [40, 64], "dtype": "float32"}, ...},
                            "weights_sha256": "...", "metadata": {...}}
        variables.msgpack  the variables (flax.serialization's msgpack of NumPy arrays)

``model.json`` holds the model's class and constructor fields, encoded by jdl's one
model-config codec (``jdl.nn._config``, the one :func:`jdl.pretrained.save` uses too):
numbers, strings, tuples and dtypes exactly; functions and classes only as references to
the few objects jdl resolves by name (``jax.nn:gelu``, ``jdl.nn.resnet_blocks:Bottleneck``).
A field that cannot be encoded so that it loads back (a closure, a ``functools.partial``, a
submodule) is refused at save time, naming the field and its value. The weights are raw
array buffers (no pickle): loading runs no code from the folder and imports no module it
names -- the class must be one of :mod:`jdl.nn`'s, one a :func:`jdl.nn.register_model`
builder makes, or one passed as ``load_model(path, classes=[MyModel])``.

The folder is written atomically: into a temporary folder beside it, renamed into place when
complete, so an interrupted save leaves the previous model (or nothing), never a part.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from jdl._core.files import atomic_directory
from jdl._core.tree import compare_shapes, flatten, unflatten
from jdl.nn import _config as codec
from jdl.train.runner import check_model
from jdl.train.state import TrainState, _as_variables

__all__ = ["ModelFileError", "load_model", "read_model_info", "save_model"]

FORMAT, FORMAT_VERSION = "jdl-model", 1
MODEL_FILE, WEIGHTS_FILE = "model.json", "variables.msgpack"

_SAVE_WAY_OUT = (
    "save_model records only what load_model can rebuild (for weights alone, use "
    "jdl.pretrained.save(path, None, variables))"
)
_LOAD_WAY_OUT = (
    "To allow a class of your own, pass it: load_model(path, classes=[MyModel]), or register "
    "a builder of it with jdl.nn.register_model."
)


class ModelFileError(ValueError):
    """A saved-model folder that cannot be loaded: not one, malformed, corrupt or changed."""


def _jdl_version() -> str:
    try:
        return importlib.metadata.version("jdl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def save_model(
    path: str | os.PathLike,
    model: Any,
    variables: Mapping[str, Any] | TrainState,
    *,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a model and its variables, for inference, into the folder ``path``, atomically.

    The folder holds ``model.json`` (the model's class and fields, the shape and dtype of
    every variable, the format and jdl versions, ``metadata``) and ``variables.msgpack``
    (the arrays); the how-to "Save a trained model for inference" describes them.
    :func:`load_model` rebuilds both.

    Args:
        path: the folder to write (its parents are created). In a multi-process run
            process 0 writes it (every process must call ``save_model``, with the same
            replicated variables, and see the same filesystem); each returns once it is
            written.
        model: the ``flax.linen`` module; every field must be data (numbers, strings,
            tuples, dtypes) or one of the few functions/classes jdl resolves by name
            (``jax.nn.gelu``, ``jdl.nn.Bottleneck``, ...); anything else is refused.
        variables: ``{"params": ..., "batch_stats": ...}`` (every collection given is
            saved), a :class:`TrainState` or a ``History`` (only their variables: params and
            BatchNorm statistics, not the optimiser state).
        metadata: JSON-serialisable extras (class names, preprocessing, provenance), read
            back by :func:`read_model_info`.
        overwrite: replace a model already saved at ``path``.

    Returns:
        The folder written.

    Raises:
        TypeError: a ``model`` that is not a flax module, ``variables`` without ``"params"``
            or holding non-arrays, or ``metadata`` that is not JSON-serialisable.
        ValueError: a model class or field that could not be loaded back (named, with its
            value).
        FileExistsError: ``path`` exists and ``overwrite`` is false, or it is not a saved
            model (never replaced, even with ``overwrite=True``).

    Example:
        >>> import jax, numpy as np, tempfile, os
        >>> from jdl import nn, train
        >>> model = nn.MLP(widths=(8,), num_outputs=3)
        >>> x = np.ones((5, 4), np.float32)
        >>> variables = model.init(jax.random.key(0), x[:1], train=False)
        >>> path = train.save_model(os.path.join(tempfile.mkdtemp(), "mlp"), model, variables)
        >>> loaded, loaded_variables = train.load_model(path)
        >>> loaded == model
        True
    """
    check_model("save_model", model)
    host = jax.device_get(_as_variables(variables))
    flat = {k: _host_array(k, v) for k, v in flatten(host).items()}
    config = codec.encode_model(model, way_out=_SAVE_WAY_OUT, any_class=True)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"save_model metadata must be a dict; got {type(metadata).__name__}")
    try:
        extras = json.loads(json.dumps(dict(metadata or {}), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_model metadata must be JSON-serialisable: {err}") from err
    path = Path(path)
    _check_target(path, overwrite)
    weights = serialization.msgpack_serialize(unflatten(flat))
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jdl_version": _jdl_version(),
        "model": config,
        "variables": {k: {"shape": list(a.shape), "dtype": a.dtype.name} for k, a in flat.items()},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "metadata": extras,
    }
    if jax.process_index() == 0:  # one writer in a multi-process run: same variables
        with atomic_directory(path) as tmp:
            (tmp / WEIGHTS_FILE).write_bytes(weights)
            (tmp / MODEL_FILE).write_text(json.dumps(info, indent=2) + "\n")
    if jax.process_count() > 1:  # written before any process goes on to read it
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"jdl.save_model {path}")
    return path


def _host_array(path: str, value: Any) -> np.ndarray:
    """``value`` as a NumPy array of numbers (refused otherwise, naming ``path``)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biufc" and array.dtype.name != "bfloat16":
        raise TypeError(
            f"save_model variables must hold numeric arrays; {path} is a {type(value).__name__} "
            f"of dtype {array.dtype}"
        )
    return array


def _is_saved_model(path: Path) -> bool:
    try:
        return json.loads((path / MODEL_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(path: Path, overwrite: bool) -> None:
    """Refuse to write over what ``path`` holds, unless it is a model and ``overwrite``."""
    if not (path.exists() or path.is_symlink()):
        return
    if not _is_saved_model(path):
        what = "a folder" if path.is_dir() else "a file"
        raise FileExistsError(
            f"save_model: {path} exists and is {what}, not a saved model (no {MODEL_FILE} of "
            f"format {FORMAT!r}); save_model never replaces it. Choose another path."
        )
    if not overwrite:
        raise FileExistsError(
            f"save_model: a model is already saved at {path}; pass overwrite=True to replace "
            "it, or choose another path."
        )


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``model.json`` of a saved model, checked: its format and jdl versions, the model
    config, the variables' shapes and dtypes, and the ``metadata`` saved with it.

    Args:
        path: a folder written by :func:`save_model`.

    Returns:
        The parsed ``model.json`` (``info["metadata"]`` is what was saved as metadata).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ModelFileError: ``path`` is not a saved model (a file, a folder without
            ``model.json``, malformed JSON, another format or a newer format version).
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise FileNotFoundError(
            f"no saved model at {path}: expected a folder written by save_model"
        )
    if not path.is_dir():
        weights = path.suffix == ".safetensors"
        hint = " (a jdl weight file: load it with jdl.pretrained.load_jdl)" if weights else ""
        raise ModelFileError(f"{path} is a file, not a folder written by save_model{hint}")
    try:
        info = json.loads((path / MODEL_FILE).read_text())
    except FileNotFoundError:
        found = sorted(p.name for p in path.iterdir()) or "nothing"
        raise ModelFileError(
            f"{path} is not a saved model: it has no {MODEL_FILE} (it holds {found})"
        ) from None
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path / MODEL_FILE} is not valid JSON: {err}") from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ModelFileError(
            f"{path / MODEL_FILE} is not a saved jdl model: format {found!r}, expected {FORMAT!r}"
        )
    version = info.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has saved-model format version {version!r} (written by jdl "
            f"{info.get('jdl_version')}); this jdl ({_jdl_version()}) reads versions 1 to "
            f"{FORMAT_VERSION}: upgrade jdl"
        )
    missing = [k for k in ("model", "variables", "weights_sha256") if k not in info]
    if missing:
        raise ModelFileError(f"{path / MODEL_FILE} is malformed: it has no {', '.join(missing)}")
    return info


def load_model(
    path: str | os.PathLike, *, classes: Iterable[type] = ()
) -> tuple[flax_nn.Module, dict[str, Any]]:
    """Load a model saved by :func:`save_model`: the module and its variables.

    ``jdl.predict(*load_model(path), data)`` gives bitwise the outputs the saved model gave.
    Nothing named in the folder is imported or run: the class must be one of
    :mod:`jdl.nn`'s, the class of a model a :func:`jdl.nn.register_model` builder makes,
    or in ``classes``.

    Args:
        path: the folder written by :func:`save_model`.
        classes: model classes of your own to allow (``flax.linen.Module`` subclasses),
            matched by module and name, or by name alone (a class saved from a script,
            module ``__main__``, loads with the same class imported from a module).

    Returns:
        ``(model, variables)``: the rebuilt module and ``{"params": ..., ...}`` as JAX
        arrays, ready for :func:`jdl.predict`, :func:`jdl.evaluate` or ``model.apply``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ModelFileError: not a saved model (see :func:`read_model_info`); a missing, corrupt
            or changed ``variables.msgpack`` (its SHA-256 differs from the recorded one);
            variables whose paths, shapes or dtypes differ from those recorded (each listed);
            a class that is not allowed (named, with how to allow it), or a field the class
            does not have.
        TypeError: ``classes`` holding something other than module classes.
    """
    path = Path(path)
    info = read_model_info(path)
    classes = tuple(classes)
    codec.model_classes(registered=False, classes=classes)  # the caller's: TypeError first
    model = codec.decode_model(
        info["model"], error=ModelFileError, way_out=_LOAD_WAY_OUT, classes=classes
    )
    try:
        weights = (path / WEIGHTS_FILE).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path} has no {WEIGHTS_FILE}: the weights are missing") from None
    if hashlib.sha256(weights).hexdigest() != info["weights_sha256"]:
        raise ModelFileError(
            f"{path / WEIGHTS_FILE} is corrupt or was changed since it was saved: its SHA-256 "
            f"differs from the one {MODEL_FILE} records. Save the model again."
        )
    try:
        flat = flatten(serialization.msgpack_restore(weights))
    except Exception as err:  # msgpack's errors have no common base beyond Exception
        raise ModelFileError(f"{path / WEIGHTS_FILE} cannot be read: {err}") from err
    _check_recorded(path, info["variables"], flat)
    return model, unflatten({k: jnp.asarray(v) for k, v in flat.items()})


def _check_recorded(path: Path, recorded: Any, flat: Mapping[str, Any]) -> None:
    """Raise a ModelFileError unless ``flat``'s arrays have the recorded paths, shapes, dtypes."""
    try:
        wanted = {k: tuple(v["shape"]) for k, v in recorded.items()}
        dtypes = {k: v["dtype"] for k, v in recorded.items()}
    except (AttributeError, KeyError, TypeError) as err:
        raise ModelFileError(
            f"{path / MODEL_FILE} has a malformed variables list: {err!r}"
        ) from err
    found = {k: np.shape(v) for k, v in flat.items()}
    missing, unexpected, mismatched = compare_shapes(wanted, found)
    problems = [f"missing {k} {wanted[k]}" for k in missing]
    problems += [f"unexpected {k} {found[k]}" for k in unexpected]
    problems += [
        f"{k}: shape {got} in {WEIGHTS_FILE}, {shape} recorded" for k, shape, got in mismatched
    ]
    problems += [
        f"{k}: dtype {np.asarray(flat[k]).dtype} in {WEIGHTS_FILE}, {dtypes[k]} recorded"
        for k in sorted(set(wanted) & set(found))
        if np.asarray(flat[k]).dtype.name != dtypes[k]
    ]
    if problems:
        raise ModelFileError(
            f"the variables in {path} do not match those {MODEL_FILE} records "
            f"({len(problems)} problem(s)): {'; '.join(problems[:8])}"
            + (" ..." if len(problems) > 8 else "")
            + ". The folder was changed since it was saved; save the model again."
        )
