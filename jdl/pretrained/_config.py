"""Model configuration <-> JSON, without ever importing or calling what a file names.

A jdl model is a dataclass; its fields are numbers, strings, tuples, dtypes, and sometimes
classes or functions (``block_cls=Bottleneck``, ``activation=jax.nn.gelu``). Classes and
functions are written as ``{"__ref__": "jdl.nn.resnet:Bottleneck"}`` and read back only from
modules that are *already imported* and on an allow-list (``jdl.*``, ``flax.linen``,
``jax.nn``, ``jax.numpy``), and a model class must be a ``flax.linen.Module`` subclass from
``jdl``: a config file cannot make jdl import a module or call an arbitrary function.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jdl.pretrained.errors import WeightFileError

_ALLOWED_MODULES = ("jdl.", "flax.linen", "jax.nn", "jax._src.nn", "jax.numpy")
_SKIP_FIELDS = {"parent", "name"}


def _is_dtype(value: Any) -> bool:
    if isinstance(value, np.dtype):
        return True
    if isinstance(value, type) and issubclass(value, np.generic):
        return True
    return type(value) is type(jnp.float32)  # jax.numpy's scalar types (jnp.float32, ...)


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | list):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): _encode(v, where) for k, v in value.items()}}
    if _is_dtype(value):
        return {"__dtype__": np.dtype(value).name}
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if module and qualname and "<" not in qualname:
        return {"__ref__": f"{module}:{qualname}"}
    raise ValueError(
        f"cannot record model field {where} = {value!r} in a jdl weight file: use names "
        "(e.g. activation='relu') or module-level functions, or save with model=None and pass "
        "the model to load_jdl"
    )


def _resolve(ref: str) -> Any:
    module, _, qualname = ref.partition(":")
    if not module.startswith(_ALLOWED_MODULES) or module not in sys.modules:
        raise WeightFileError(
            f"the model config refers to {ref!r}, outside the modules jdl resolves "
            f"({', '.join(_ALLOWED_MODULES)}; already imported); pass model= explicitly"
        )
    obj: Any = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise WeightFileError(f"the model config refers to {ref!r}, which does not exist")
    return obj


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"].items()}
        if "__dtype__" in value:
            name = np.dtype(value["__dtype__"]).name
            return getattr(jnp, name, None) or np.dtype(name)
        if "__ref__" in value:
            return _resolve(value["__ref__"])
        raise WeightFileError(f"unknown entry in the model config: {value!r}")
    return value


def encode_model(model: nn.Module) -> str:
    """JSON for ``model``'s class and fields (``name``/``parent`` left out)."""
    fields = {
        f.name: _encode(getattr(model, f.name), f"{type(model).__name__}.{f.name}")
        for f in dataclasses.fields(model)
        if f.name not in _SKIP_FIELDS and f.init
    }
    cls = type(model)
    return json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields})


def decode_model(text: str) -> nn.Module:
    """Rebuild a model from :func:`encode_model`'s JSON (jdl model classes only).

    Raises:
      WeightFileError: for malformed JSON or a class that is not a jdl ``flax.linen.Module``.
    """
    try:
        config = json.loads(text)
        cls = _resolve(config["class"])
        fields = {k: _decode(v) for k, v in config["fields"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise WeightFileError(f"the model config in the file is malformed: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise WeightFileError(f"the model config names {config['class']!r}, not a Flax module")
    return cls(**fields)
