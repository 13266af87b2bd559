"""jdl's own weight format: one ``.safetensors`` file with the variables and the model config.

The file holds every variable under its flat path (``"params/Conv_0/kernel"``,
``"batch_stats/BatchNorm_0/mean"``) and, in the safetensors header metadata:

- ``"format": "jdl"`` and ``"format_version"``,
- ``"model"``: the model's class and fields as JSON (see :mod:`jdl.pretrained._config`),
- ``"input_shape"``: the batch shape the model was built for (VGG/CNN heads depend on it),
- ``"info"``: free-form JSON (preprocessing, provenance, the classes, ...).

Reading runs no code from the file: safetensors is a JSON header plus raw buffers, and the
config can only name jdl model classes. Writes are atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jdl._core.tree import compare_shapes, flatten, unflatten
from jdl.pretrained import _config, _files
from jdl.pretrained._result import Pretrained
from jdl.pretrained._tree import (
    LoadReport,
    check_without_input_shape,
    expected_shapes,
    merge_into,
)
from jdl.pretrained.errors import WeightFileError, WeightMismatchError

__all__ = ["load_jdl", "save"]

_FORMAT_VERSION = "1"


def _variables_of(variables: Any) -> Mapping[str, Any]:
    if hasattr(variables, "variables") and hasattr(variables, "params"):  # a TrainState
        return variables.variables
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise TypeError(
            "save expects model variables ({'params': ..., 'batch_stats': ...}), a "
            f"TrainState or a History's .variables; got {type(variables).__name__}"
        )
    return variables


def save(
    path: str | os.PathLike,
    model: Any,
    variables: Any,
    *,
    input_shape: tuple[int, ...] | None = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Save a model's variables and configuration to one ``.safetensors`` file, atomically.

    Args:
      path: destination (``.safetensors`` is conventional); parent folders are created.
      model: the ``flax.linen`` module (its class and fields are recorded so
        :func:`load_jdl` can rebuild it), or ``None`` to store the variables only.
      variables: ``{"params": ..., "batch_stats": ...}``, a ``TrainState`` or
        ``history.variables``.
      input_shape: the input batch shape the model takes, e.g. ``(1, 40)``; recorded so a
        load can check every variable's shape against the rebuilt model.
      info: JSON-serialisable extras (class names, preprocessing, provenance).

    Returns:
      The path written.

    Raises:
      ValueError: ``input_shape`` is given and the model, initialised on inputs of that
        shape, would not have exactly these variables (a shape without the batch axis,
        say): the file would record an input shape its own load then refuses.

    Example:
      >>> import jax, jax.numpy as jnp, tempfile, os
      >>> from jdl import nn, pretrained
      >>> model = nn.MLP(widths=(8,), num_outputs=3)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
      >>> path = os.path.join(tempfile.mkdtemp(), "mlp.safetensors")
      >>> _ = pretrained.save(path, model, variables, input_shape=(1, 4))
      >>> pretrained.load_jdl(path).model == model
      True
    """
    flat = flatten(_variables_of(variables))
    if model is not None and input_shape is not None:
        _check_input_shape(model, flat, tuple(int(d) for d in input_shape))
    metadata = {"format": "jdl", "format_version": _FORMAT_VERSION}
    if model is not None:
        metadata["model"] = _config.encode_model(model)
    if input_shape is not None:
        metadata["input_shape"] = json.dumps([int(d) for d in input_shape])
    metadata["info"] = json.dumps(dict(info or {}))
    arrays = {k: np.asarray(v) for k, v in flat.items()}
    return _files.write_safetensors(path, arrays, metadata)


def _check_input_shape(model: Any, flat: Mapping[str, Any], input_shape: tuple[int, ...]) -> None:
    """Raise a ValueError unless ``model`` on ``input_shape`` inputs has the variables ``flat``."""
    try:
        wanted = {k: tuple(v.shape) for k, v in expected_shapes(model, input_shape).items()}
    except Exception as err:  # noqa: BLE001 (the model refuses such inputs: rank, size, ...)
        raise ValueError(
            f"save: input_shape={input_shape} does not fit the {type(model).__name__}: {err} "
            "(input_shape is the batch shape the model takes, batch axis first, e.g. (1, 40))"
        ) from err
    missing, unexpected, mismatched = compare_shapes(
        wanted, {k: np.shape(v) for k, v in flat.items()}
    )
    problems = [f"missing {k} {wanted[k]}" for k in missing] + [
        f"unexpected {k}" for k in unexpected
    ]
    problems += [f"{k}: {got} saved, {shape} from input_shape" for k, shape, got in mismatched]
    if problems:
        raise ValueError(
            f"save: the variables do not fit the {type(model).__name__} initialised on inputs of "
            f"shape {input_shape} ({len(problems)} problem(s)): {'; '.join(problems[:8])}. Pass "
            "the input_shape the variables were made with (batch axis first, e.g. (1, 40))."
        )


def _is_jdl_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`save` (reads the header only)."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="np") as f:
            return (f.metadata() or {}).get("format") == "jdl"
    except Exception:
        return False


def _check_unknown_input(
    path: Any, model: Any, recorded: Any, tensors: Mapping[str, Any], strict: bool
) -> tuple[int, ...] | None:
    """Check a file that records no input shape against another model than its own.

    Returns ``None`` when the variables fit ``model`` (load the file as it is), or, for a
    non-strict load of variables that do not fit, the guessed input shape to load at.

    Raises:
      WeightMismatchError: the variables do not fit ``model`` (``strict``), listing each
        missing, unexpected and mismatched path with its shapes.
      WeightFileError: ``model`` accepts none of the inputs guessed from the file.
    """
    saved_from = (
        f"a model of class {type(recorded).__name__}"
        if recorded is not None
        else "a model it does not record"
    )
    check = check_without_input_shape(model, tensors)
    if check is None:
        raise WeightFileError(
            f"{str(path)!r} records no input shape and was saved from {saved_from}; jdl could "
            f"not work out the variables of the given {type(model).__name__} to check that "
            "the file fits it. Pass input_shape= (the batch shape the model takes) to "
            "load_jdl / load, and save with input_shape= so the file records it."
        )
    if check.fits:
        return None
    if strict:
        raise WeightMismatchError(
            check.missing,
            check.unexpected,
            check.mismatched,
            shapes=check.shapes,
            source=f"jdl weights {str(path)!r}",
            summary=(
                f"they were saved from {saved_from} without an input shape, and do not fit "
                f"the given {type(model).__name__} (checked with inputs of shape "
                f"{check.input_shape}, guessed from the file's kernels)."
            ),
            hint=(
                "Fix: load the file into the model it was saved from"
                + (" (load_jdl(path) rebuilds it)" if recorded is not None else "")
                + " or one of the same structure; pass input_shape= to check every shape "
                "exactly, and save with input_shape= so the file records it; or pass "
                "strict=False to load what fits."
            ),
        )
    return check.input_shape


def load_jdl(
    path: str | os.PathLike,
    model: Any = None,
    *,
    strict: bool = True,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Pretrained:
    """Load a file written by :func:`save`.

    Args:
      path: the ``.safetensors`` file.
      model: the module to load into; default the one recorded in the file.
      strict: raise :class:`~jdl.pretrained.WeightMismatchError` listing every missing,
        unexpected or shape-mismatched variable (checked when an input shape is known);
        ``False`` loads what fits and reports the rest.
      input_shape: batch shape for the check (default the recorded one).
      seed: initial values of variables not loaded (``strict=False``).

    Returns:
      A :class:`~jdl.pretrained.Pretrained`; ``info`` is what was saved with it.

    Without an input shape (none recorded, none passed) the variables cannot be checked
    exactly. Loaded into the model the file records, they are taken as they are. Loaded into
    another model, they are checked against it for an input shape guessed from the file's
    kernels (paths, and every shape that does not depend on the input's spatial size), so
    variables of another structure raise :class:`~jdl.pretrained.WeightMismatchError` here,
    listing each missing, unexpected and mismatched path with its shapes, rather than
    flax's ``ScopeParamNotFoundError`` at the first ``apply``. A non-strict load of such
    variables loads what fits at the guessed input shape.

    Raises:
      WeightFileError: a corrupt/truncated/malformed file, one not written by :func:`save`,
        or (without an input shape) a ``model`` that accepts none of the guessed inputs.
      WeightMismatchError: variables that do not fit ``model`` (``strict=True``).
    """
    tensors, metadata = _files.read_safetensors(path)
    if metadata.get("format") != "jdl":
        raise WeightFileError(
            f"{str(path)!r} is a safetensors file but not in jdl's format (no 'format: jdl' "
            "metadata); for torchvision/timm state dicts use jdl.pretrained.from_torchvision"
        )
    if metadata.get("format_version") != _FORMAT_VERSION:
        raise WeightFileError(
            f"{str(path)!r} has jdl format version {metadata.get('format_version')!r}; this jdl "
            f"reads version {_FORMAT_VERSION}"
        )
    recorded = _config.decode_model(metadata["model"]) if "model" in metadata else None
    if model is None:
        if recorded is None:
            raise WeightFileError(
                f"{str(path)!r} was saved without a model config; pass model= to load_jdl"
            )
        model = recorded
    info = json.loads(metadata.get("info", "{}"))
    if input_shape is None and "input_shape" in metadata:
        input_shape = tuple(json.loads(metadata["input_shape"]))
    if input_shape is None and model != recorded:
        input_shape = _check_unknown_input(path, model, recorded, tensors, strict)
    if input_shape is None:  # the file's own model, or one that fits: take the file as it is
        report = LoadReport(loaded=sorted(tensors), missing=[], unexpected=[], mismatched=[])
        variables = unflatten({k: np.asarray(v) for k, v in tensors.items()})
        import jax

        variables = jax.tree_util.tree_map(jax.numpy.asarray, variables)
        return Pretrained(model=model, variables=variables, report=report, info=info)
    variables, report = merge_into(
        model,
        tensors,
        input_shape=input_shape,
        strict=strict,
        seed=seed,
        source=f"jdl weights {str(path)!r}",
    )
    return Pretrained(model=model, variables=variables, report=report, info=info)
