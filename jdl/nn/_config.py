"""A model's class and fields <-> JSON data, without ever importing or calling what a file names.

The one model-config codec of jdl: :func:`jdl.train.save_model` / ``load_model`` and
:func:`jdl.pretrained.save` / ``load_jdl`` both write and read it.

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
``ResNet``, ``CifarResNet``), the class of a model that :func:`jdl.nn.register_model` builds
in this process, or one the caller allows explicitly (``classes``). A config therefore cannot
make jdl import a module or call an arbitrary function; :func:`encode_model` refuses, at save
time, a field it could not read back (a closure, a ``functools.partial``, a submodule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_SKIP_FIELDS = {"parent", "name"}
_JAX_NN_ACTIVATIONS = (
    "celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "identity", "leaky_relu", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu",
    "sigmoid", "silu", "soft_sign", "softmax", "softplus", "sparse_plus", "sparse_sigmoid",
    "squareplus", "standardize", "swish", "tanh",
)  # fmt: skip
_JNP_ACTIVATIONS = ("abs", "cos", "exp", "sin", "square", "tanh")


def class_ref(obj: Any) -> str | None:
    """``"module:qualname"`` of a class or function, or ``None`` for one without them."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}:{qualname}"
    return None


def _field_registry() -> dict[str, Any]:
    """Canonical reference -> object, for everything a field may name."""
    from jdl.nn.activations import identity
    from jdl.nn.resnet_blocks import BasicBlock, Bottleneck

    table: dict[str, Any] = {"jdl.nn.activations:identity": identity}
    table.update(
        {f"jax.nn:{n}": getattr(jax.nn, n) for n in _JAX_NN_ACTIVATIONS if hasattr(jax.nn, n)}
    )
    table.update({f"jax.numpy:{n}": getattr(jnp, n) for n in _JNP_ACTIVATIONS})
    table.update(
        {f"jax.nn.initializers:{n}": getattr(jax.nn.initializers, n) for n in ("zeros", "ones")}
    )
    table.update({class_ref(c): c for c in (BasicBlock, Bottleneck)})
    return table


def model_classes(*, registered: bool, classes: Iterable[type] = ()) -> dict[str, type]:
    """Reference -> class of the models jdl rebuilds: jdl's, with ``registered`` those of
    the models :func:`jdl.nn.register_model` builds, and ``classes`` (the caller's)."""
    from jdl.nn import CNN, MLP, VGG, CifarResNet, ResNet, RNNClassifier

    table = {class_ref(c): c for c in (MLP, CNN, VGG, RNNClassifier, ResNet, CifarResNet)}
    if registered:
        from jdl.nn.registry import get_model, list_models

        for name in list_models():
            try:
                cls = type(get_model(name))
            except Exception:  # a builder that needs arguments: its class is not rebuildable
                continue
            if (ref := class_ref(cls)) is not None:
                table.setdefault(ref, cls)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(
                f"classes must hold flax.linen.Module subclasses; got {cls!r} "
                f"({type(cls).__name__})"
            )
        table[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return table


def _lookup(table: dict[str, Any], ref: str) -> Any:
    """``table[ref]``, also under the object's own ``module:qualname`` (older files)."""
    if ref in table:
        return table[ref]
    for obj in table.values():
        if class_ref(obj) == ref:
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


def allowed_refs() -> str:
    """The references a field may hold, comma-separated (for messages)."""
    return ", ".join(sorted(_field_registry()))


def _encode(value: Any, where: str, way_out: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | list):
        return {"__tuple__": [_encode(v, where, way_out) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): _encode(v, where, way_out) for k, v in value.items()}}
    if _is_dtype(value):
        return {"__dtype__": np.dtype(value).name}
    ref = _ref_of(value, _field_registry())
    if ref is not None:
        return {"__ref__": ref}
    raise ValueError(
        f"cannot record model field {where} = {value!r}: a saved model config may name only "
        "the functions and classes jdl resolves on load, found none matching. Use a name "
        "(e.g. activation='relu', kernel_init='he'; see jdl.nn.ACTIVATION_NAMES and "
        f"jdl.nn.INITIALIZER_NAMES) or one of: {allowed_refs()}; {way_out}"
    )


def _decode(value: Any, where: str, error: type[Exception], way_out: str) -> Any:
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v, where, error, way_out) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v, where, error, way_out) for k, v in value["__dict__"].items()}
        if "__dtype__" in value:
            name = np.dtype(value["__dtype__"]).name
            return getattr(jnp, name, None) or np.dtype(name)
        if "__ref__" in value:
            ref = value["__ref__"]
            obj = _lookup(_field_registry(), ref) if isinstance(ref, str) else None
            if obj is None:
                raise error(
                    f"the model config refers to {ref!r} for {where}, outside the modules and "
                    f"names jdl resolves; allowed references are: {allowed_refs()}. {way_out}"
                )
            return obj
        raise error(f"unknown entry in the model config for {where}: {value!r}")
    return value


def encode_model(model: nn.Module, *, way_out: str, any_class: bool = False) -> dict[str, Any]:
    """``{"class": ..., "fields": ...}`` for ``model`` (``name``/``parent`` left out).

    Args:
      model: the module.
      way_out: what the user may do instead, closing each refusal's message.
      any_class: record any named class (its loader must then be told to allow it);
        otherwise only the classes :func:`decode_model` rebuilds by default.

    Raises:
      ValueError: the class or a field is something the loader could not rebuild.
    """
    cls = type(model)
    ref = class_ref(cls) if not any_class else f"{cls.__module__}:{cls.__qualname__}"
    known = model_classes(registered=False)
    if not any_class and known.get(ref) is not cls:
        known = model_classes(registered=True)
        if known.get(ref) is not cls:
            raise ValueError(
                f"cannot record the model class {ref or cls!r}: jdl rebuilds only the model "
                f"classes {', '.join(sorted(known))} (jdl's and those of models registered "
                f"with jdl.nn.register_model); register a builder for it, {way_out}"
            )
    fields = {
        f.name: _encode(getattr(model, f.name), f"{cls.__name__}.{f.name}", way_out)
        for f in dataclasses.fields(model)
        if f.name not in _SKIP_FIELDS and f.init
    }
    return {"class": ref, "fields": fields}


def decode_model(
    config: Any,
    *,
    error: type[Exception],
    way_out: str,
    classes: Iterable[type] = (),
) -> nn.Module:
    """Rebuild a model from :func:`encode_model`'s data (allowed classes only).

    Args:
      config: the ``{"class": ..., "fields": ...}`` data.
      error: the exception class to raise (the caller's file error).
      way_out: what the user may do instead, closing each refusal's message.
      classes: model classes allowed besides jdl's and the registered ones; one of them
        matches the config's class by ``module:qualname``, or else by its name alone (a
        class saved from a script's ``__main__`` and loaded from a module).

    Raises:
      error: malformed data, a class or reference outside the registry, or a field the
        class does not have.
    """
    try:
        ref, raw = config["class"], dict(config["fields"])
    except (KeyError, TypeError, ValueError) as err:
        raise error(f"the model config is malformed: {err!r}") from err
    classes = tuple(classes)
    cls = None
    if isinstance(ref, str):
        for registered in (False, True):
            table = model_classes(registered=registered, classes=classes)
            if ref in table:
                cls = table[ref]
                break
        else:  # a class the caller allows, saved from another module (a script's __main__)
            same = [c for c in classes if c.__qualname__ == ref.rpartition(":")[2]]
            cls = same[0] if len(same) == 1 else None
    if cls is None:
        raise error(
            f"the model config names the class {ref!r}, which is not a model class jdl "
            f"rebuilds; allowed: {', '.join(sorted(model_classes(registered=True)))} (jdl's "
            "and those of models registered with jdl.nn.register_model). "
            f"{way_out}"
        )
    known = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in _SKIP_FIELDS}
    unknown = sorted(set(map(str, raw)) - known)
    if unknown:
        raise error(
            f"the model config gives {cls.__name__} the fields {unknown}, which it does not "
            f"have; its fields are {sorted(known)}"
        )
    try:
        fields = {k: _decode(v, f"{cls.__name__}.{k}", error, way_out) for k, v in raw.items()}
        return cls(**fields)
    except error:
        raise
    except (TypeError, ValueError) as err:  # e.g. a dtype numpy does not know, a bad value
        raise error(f"the model config is malformed: {err}") from err
