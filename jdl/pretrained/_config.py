"""Model configuration <-> JSON, without ever importing or calling what a file names.

A jdl model is a dataclass; its fields are numbers, strings, tuples, dtypes, and sometimes
classes or functions (``block_cls=Bottleneck``, ``activation=jax.nn.gelu``). Classes and
functions are written as ``{"__ref__": "jax.nn:gelu"}`` and read back only through an
explicit registry of objects jdl knows, looked up by their exact name: never by importing a
module or walking attributes. The registry holds

- activations: ``jdl.nn.identity``, the activation functions of :mod:`jax.nn` (``relu``,
  ``gelu``, ``silu``, ``softmax``, ...; ``flax.linen`` re-exports the same objects) and a few
  element-wise :mod:`jax.numpy` functions (``tanh``, ``sin``, ...);
- initialisers usable as they are: ``jax.nn.initializers.zeros`` and ``ones`` (jdl's own are
  named by strings, ``kernel_init="he"``, which need no reference at all);
- the residual block classes ``jdl.nn.BasicBlock`` and ``jdl.nn.Bottleneck``;

and a model class must be one of jdl's (``MLP``, ``CNN``, ``VGG``, ``RNNClassifier``,
``ResNet``, ``CifarResNet``) or the class of a model that :func:`jdl.nn.register_model`
builds in this process. A config file therefore cannot make jdl import a module or call an
arbitrary function; :func:`encode_model` refuses, at save time, a field it could not read
back.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl.pretrained.errors import WeightFileError

_SKIP_FIELDS = {"parent", "name"}
_JAX_NN_ACTIVATIONS = (
    "celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "identity", "leaky_relu", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu",
    "sigmoid", "silu", "soft_sign", "softmax", "softplus", "sparse_plus", "sparse_sigmoid",
    "squareplus", "standardize", "swish", "tanh",
)  # fmt: skip
_JNP_ACTIVATIONS = ("abs", "cos", "exp", "sin", "square", "tanh")


def _natural_ref(obj: Any) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}:{qualname}"
    return None


def _field_registry() -> dict[str, Any]:
    """Canonical reference -> object, for everything a field may name."""
    from jdl.nn import BasicBlock, Bottleneck, identity

    table: dict[str, Any] = {"jdl.nn.activations:identity": identity}
    table.update(
        {f"jax.nn:{n}": getattr(jax.nn, n) for n in _JAX_NN_ACTIVATIONS if hasattr(jax.nn, n)}
    )
    table.update({f"jax.numpy:{n}": getattr(jnp, n) for n in _JNP_ACTIVATIONS})
    table.update(
        {f"jax.nn.initializers:{n}": getattr(jax.nn.initializers, n) for n in ("zeros", "ones")}
    )
    table.update({_natural_ref(c): c for c in (BasicBlock, Bottleneck)})
    return table


def _model_classes(*, registered: bool) -> dict[str, type]:
    """Reference -> class of the models jdl rebuilds (``registered``: with registry ones)."""
    from jdl.nn import CNN, MLP, VGG, CifarResNet, ResNet, RNNClassifier

    classes = {_natural_ref(c): c for c in (MLP, CNN, VGG, RNNClassifier, ResNet, CifarResNet)}
    if registered:
        from jdl.nn.registry import get_model, list_models

        for name in list_models():
            try:
                cls = type(get_model(name))
            except Exception:  # a builder that needs arguments: its class is not rebuildable
                continue
            if (ref := _natural_ref(cls)) is not None:
                classes.setdefault(ref, cls)
    return classes


def _lookup(table: dict[str, Any], ref: str) -> Any:
    """``table[ref]``, also under the object's own ``module:qualname`` (older files)."""
    if ref in table:
        return table[ref]
    for obj in table.values():
        if _natural_ref(obj) == ref:
            return obj
    return None


def _ref_of(value: Any, table: dict[str, Any]) -> str | None:
    for ref, obj in table.items():
        if obj is value:
            return ref
    return None


def _is_dtype(value: Any) -> bool:
    if isinstance(value, np.dtype):
        return True
    if isinstance(value, type) and issubclass(value, np.generic):
        return True
    return type(value) is type(jnp.float32)  # jax.numpy's scalar types (jnp.float32, ...)


def _allowed_fields() -> str:
    return ", ".join(sorted(_field_registry()))


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
    ref = _ref_of(value, _field_registry())
    if ref is not None:
        return {"__ref__": ref}
    raise ValueError(
        f"cannot record model field {where} = {value!r} in a jdl weight file: a file may name "
        "only the functions and classes jdl resolves on load, found none matching. Use a name "
        "(e.g. activation='relu', kernel_init='he'; see jdl.nn.ACTIVATION_NAMES and "
        f"jdl.nn.INITIALIZER_NAMES) or one of: {_allowed_fields()}; or save with model=None "
        "and pass the model to load_jdl"
    )


def _resolve_field(ref: Any, where: str) -> Any:
    obj = _lookup(_field_registry(), ref) if isinstance(ref, str) else None
    if obj is None:
        raise WeightFileError(
            f"the model config refers to {ref!r} for {where}, outside the modules and names "
            f"jdl resolves; allowed references are: {_allowed_fields()}. Pass model= to load "
            "the weights into a model you build yourself"
        )
    return obj


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v, where) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v, where) for k, v in value["__dict__"].items()}
        if "__dtype__" in value:
            name = np.dtype(value["__dtype__"]).name
            return getattr(jnp, name, None) or np.dtype(name)
        if "__ref__" in value:
            return _resolve_field(value["__ref__"], where)
        raise WeightFileError(f"unknown entry in the model config for {where}: {value!r}")
    return value


def _class_ref(cls: type) -> str:
    ref = _natural_ref(cls)
    classes = _model_classes(registered=False)
    if ref in classes and classes[ref] is cls:
        return ref
    classes = _model_classes(registered=True)
    if ref in classes and classes[ref] is cls:
        return ref
    raise ValueError(
        f"cannot record the model class {ref or cls!r} in a jdl weight file: jdl rebuilds only "
        f"the model classes {', '.join(sorted(classes))} (jdl's and those of models registered "
        "with jdl.nn.register_model); register a builder for it, or save with model=None and "
        "pass the model to load_jdl"
    )


def _resolve_class(ref: Any) -> type:
    if isinstance(ref, str):
        for registered in (False, True):
            classes = _model_classes(registered=registered)
            if ref in classes:
                return classes[ref]
    raise WeightFileError(
        f"the model config names the class {ref!r}, which is not a model class jdl rebuilds; "
        f"allowed: {', '.join(sorted(_model_classes(registered=True)))} (jdl's and those of "
        "models registered with jdl.nn.register_model). Pass model= to load the weights into "
        "a model you build yourself"
    )


def encode_model(model: nn.Module) -> str:
    """JSON for ``model``'s class and fields (``name``/``parent`` left out).

    Raises:
      ValueError: the class or a field is something :func:`decode_model` would refuse.
    """
    cls = type(model)
    class_ref = _class_ref(cls)
    fields = {
        f.name: _encode(getattr(model, f.name), f"{cls.__name__}.{f.name}")
        for f in dataclasses.fields(model)
        if f.name not in _SKIP_FIELDS and f.init
    }
    return json.dumps({"class": class_ref, "fields": fields})


def decode_model(text: str) -> nn.Module:
    """Rebuild a model from :func:`encode_model`'s JSON (registered model classes only).

    Raises:
      WeightFileError: malformed JSON, a class or reference outside the registry, or a field
        the class does not have.
    """
    try:
        config = json.loads(text)
        cls = _resolve_class(config["class"])
        raw = dict(config["fields"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise WeightFileError(f"the model config in the file is malformed: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise WeightFileError(f"the model config names {config['class']!r}, not a Flax module")
    known = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in _SKIP_FIELDS}
    unknown = sorted(set(map(str, raw)) - known)
    if unknown:
        raise WeightFileError(
            f"the model config gives {cls.__name__} the fields {unknown}, which it does not "
            f"have; its fields are {sorted(known)}"
        )
    try:
        fields = {k: _decode(v, f"{cls.__name__}.{k}") for k, v in raw.items()}
    except WeightFileError:
        raise
    except (TypeError, ValueError) as err:  # e.g. a dtype numpy does not know
        raise WeightFileError(f"the model config in the file is malformed: {err}") from err
    return cls(**fields)
