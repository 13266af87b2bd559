"""Models by name: :func:`get_model` builds any registered model, :func:`list_models` names them.

Every named constructor of :mod:`jdl.nn` is registered, as timm registers its models:

- ``vgg11``, ``vgg13``, ``vgg16``, ``vgg19`` (:class:`~jdl.nn.VGG`), and ``vgg11_bn`` ...
  ``vgg19_bn`` with BatchNorm after every conv (torchvision's ``vgg*_bn``);
- ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``
  (:class:`~jdl.nn.ResNet`, ImageNet, v1.5);
- ``cifar_resnet20``, ``cifar_resnet32``, ``cifar_resnet44``, ``cifar_resnet56``,
  ``cifar_resnet110`` (:class:`~jdl.nn.CifarResNet`, He et al.'s CIFAR-10 nets; pass
  ``plain=True`` for their plain counterparts);
- the MNIST-1D paper's baselines (Greydanus 2020): ``mnist1d_logistic`` (one linear layer,
  410 parameters on 40 features), ``mnist1d_mlp`` (two ReLU layers of 100 units, 15,210),
  ``mnist1d_cnn`` (three 1-D convs of 25 channels, stride 2, 5,210) and ``mnist1d_gru`` (a
  bidirectional GRU of 6 units per direction, read out on every step, 5,110).

Each builder takes the model's fields as keyword overrides (``num_outputs``, ``dtype``, ...);
the MNIST-1D models default to 10 outputs, the ImageNet ones to 1000, the CIFAR ones to 10.
Add your own with :func:`register_model`.

Example:
  >>> from jdl import nn
  >>> nn.get_model("mnist1d_cnn").features
  (25, 25, 25)
  >>> nn.get_model("resnet50", num_outputs=10).num_outputs
  10
  >>> nn.list_models("cifar_*")
  ['cifar_resnet110', 'cifar_resnet20', 'cifar_resnet32', 'cifar_resnet44', 'cifar_resnet56']
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

import flax.linen as nn

from jdl.nn.cifar_resnet import CifarResNet
from jdl.nn.conv import CNN
from jdl.nn.mlp import MLP
from jdl.nn.recurrent import RNNClassifier
from jdl.nn.resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from jdl.nn.vgg import vgg11, vgg13, vgg16, vgg19

__all__ = ["get_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None, *, name: str | None = None, overwrite: bool = False
) -> Any:
    """Register a model builder under ``name`` (default: the function's name).

    Usable as a decorator (``@register_model`` or ``@register_model(name="my_net")``) or
    called directly (``register_model(builder, name="my_net")``). A builder takes keyword
    overrides of the model's fields and returns an unbound :class:`flax.linen.Module`.

    Args:
      fn: the builder.
      name: the registry name; default ``fn.__name__``.
      overwrite: replace a builder already registered under that name.

    Returns:
      ``fn`` (so the decorated function stays usable), or a decorator when ``fn`` is None.

    Raises:
      ValueError: the name is taken and ``overwrite`` is false.

    Example:
      >>> from jdl import nn
      >>> @nn.register_model(name="tiny_mlp_example", overwrite=True)
      ... def tiny_mlp(**overrides):
      ...     return nn.MLP(**{"widths": (8,), "num_outputs": 2, **overrides})
      >>> nn.get_model("tiny_mlp_example", num_outputs=3).num_outputs
      3
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS and not overwrite and _MODELS[key] is not builder:
            raise ValueError(
                f"a model named {key!r} is already registered; pass overwrite=True to replace it"
            )
        _MODELS[key] = builder
        return builder

    return decorate if fn is None else decorate(fn)


def list_models(pattern: str | None = None) -> list[str]:
    """The registered model names, sorted; only those matching a glob ``pattern`` if given.

    Example:
      >>> from jdl import nn
      >>> nn.list_models("mnist1d_*")
      ['mnist1d_cnn', 'mnist1d_gru', 'mnist1d_logistic', 'mnist1d_mlp']
    """
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` set its fields.

    Args:
      name: a name from :func:`list_models`, e.g. ``"resnet50"`` or ``"mnist1d_cnn"``.
      **overrides: fields of the model, e.g. ``num_outputs=10`` or ``dtype=jnp.bfloat16``.

    Returns:
      An unbound :class:`flax.linen.Module`.

    Raises:
      KeyError: an unknown name; the message lists the valid ones and the closest matches.
      TypeError: an override that is not a field of the model.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())} "
            "(add your own with jdl.nn.register_model)"
        )
    return _MODELS[name](**overrides)


def _with_defaults(fn: Callable[..., nn.Module], **defaults: Any) -> Callable[..., nn.Module]:
    def build(**overrides: Any) -> nn.Module:
        return fn(**{**defaults, **overrides})

    build.__doc__ = fn.__doc__
    return build


for _fn in (vgg11, vgg13, vgg16, vgg19):
    register_model(_fn)
    register_model(_with_defaults(_fn, batch_norm=True), name=f"{_fn.__name__}_bn")
for _fn in (resnet18, resnet34, resnet50, resnet101, resnet152):
    register_model(_fn)
for _depth in (20, 32, 44, 56, 110):
    register_model(_with_defaults(CifarResNet, depth=_depth), name=f"cifar_resnet{_depth}")


@register_model(name="mnist1d_logistic")
def _mnist1d_logistic(**overrides: Any) -> MLP:
    """The MNIST-1D paper's logistic regression: one linear layer (410 parameters)."""
    return MLP(**{"widths": (), "num_outputs": 10, **overrides})


@register_model(name="mnist1d_mlp")
def _mnist1d_mlp(**overrides: Any) -> MLP:
    """The MNIST-1D paper's MLP: two ReLU layers of 100 units (15,210 parameters)."""
    return MLP(**{"widths": (100, 100), "num_outputs": 10, **overrides})


@register_model(name="mnist1d_cnn")
def _mnist1d_cnn(**overrides: Any) -> CNN:
    """The MNIST-1D paper's CNN: three 1-D convs of 25 channels, stride 2 (5,210 parameters)."""
    settings: dict[str, Any] = dict(
        features=(25, 25, 25), kernel_size=(5, 3, 3), strides=2, padding=1, ndim=1
    )
    return CNN(**{**settings, "num_outputs": 10, **overrides})


@register_model(name="mnist1d_gru")
def _mnist1d_gru(**overrides: Any) -> RNNClassifier:
    """The MNIST-1D paper's GRU: bidirectional, 6 units each way, head on every step (5,110)."""
    settings: dict[str, Any] = dict(cell="gru", hidden_size=6, bidirectional=True)
    return RNNClassifier(**{**settings, "readout": "sequence", "num_outputs": 10, **overrides})
