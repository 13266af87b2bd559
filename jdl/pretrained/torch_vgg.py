"""torchvision VGG state dicts <-> :class:`jdl.nn.VGG` variables (VGG-11/13/16/19, +-BN).

torchvision builds a VGG as ``features`` (an ``nn.Sequential`` from ``make_layers``: per conv
``Conv2d, [BatchNorm2d,] ReLU``, per ``"M"`` one ``MaxPool2d``), an
``AdaptiveAvgPool2d((7, 7))`` and ``classifier`` (``Linear, ReLU, Dropout, Linear, ReLU,
Dropout, Linear``). Only the convs, BatchNorms and Linears have weights, so their indices
encode the configuration: consecutive convs of a block are 2 (3 with BatchNorm) indices
apart, one more per max-pool between them. The mapping, with ``block{b}_conv{c}`` the jdl
name of the conv at that position (:func:`jdl.nn.vgg_layer_plan`):

==============================================  ==============================================
torchvision                                     jdl
==============================================  ==============================================
``features.{i}.weight`` (O, I, 3, 3)            ``params/block{b}_conv{c}/kernel`` (3, 3, I, O)
``features.{i}.bias``                           ``params/block{b}_conv{c}/bias``
``features.{i+1}.weight`` / ``.bias`` (BN)      ``params/block{b}_bn{c}/scale`` / ``bias``
``features.{i+1}.running_mean`` / ``_var``      ``batch_stats/block{b}_bn{c}/mean`` / ``var``
``features.{i+1}.num_batches_tracked``          dropped (a counter, not a weight)
``classifier.0`` / ``.3``                       ``fc1`` / ``fc2`` (kernel = weight transposed)
``classifier.6``                                ``head``
==============================================  ==============================================

**Flatten order.** torchvision flattens the final ``(C, 7, 7)`` feature map channel-major
(index ``c * 49 + h * 7 + w``), jdl's NHWC feature map is flattened ``(h, w, c)`` (index
``(h * 7 + w) * C + c``). So the first classifier weight ``(4096, 25088)`` is reshaped to
``(4096, C, 7, 7)``, transposed to ``(7, 7, C, 4096)`` and reshaped to ``(25088, 4096)``;
every other Linear weight is only transposed.

**Input size.** jdl's VGG has no adaptive pooling: its classifier takes the final feature
map as it is. torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the identity when that map is
already 7 x 7, i.e. for inputs of 224 to 255 pixels a side (five 2x2 pools, rounding down),
where both compute the same function. At other sizes the classifier does not fit (jdl
raises); load with ``strict=False`` and ``input_shape=`` to keep the convs and train a new
classifier.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jdl._core.tree import flatten
from jdl.nn.vgg import VGG, VGG_CONFIGS, vgg_layer_plan
from jdl.pretrained.errors import WeightFileError

__all__ = ["jdl_vgg_to_torch", "torch_vgg_to_jdl", "vgg_from_state_dict"]

#: What :func:`jdl.pretrained.from_torchvision` maps, for messages.
SUPPORTED = (
    "torchvision/timm ResNet-18, 34, 50, 101, 152 and torchvision VGG-11, 13, 16, 19 "
    "with or without BatchNorm (vgg16, vgg16_bn, ...)"
)
_BN_LEAVES = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}
_FEATURE = re.compile(r"^features\.(\d+)\.(\w+)$")
_CLASSIFIER = re.compile(r"^classifier\.(\d+)\.(weight|bias)$")


def is_torch_vgg(state_dict: Mapping[str, Any]) -> bool:
    """Whether a state dict uses torchvision's VGG names (``features.*``, ``classifier.*``)."""
    return any(k.startswith(("features.", "classifier.")) for k in state_dict)


def _refuse(reason: str) -> WeightFileError:
    return WeightFileError(f"not a torchvision VGG state dict: {reason}. Supported: {SUPPORTED}")


def _layout(state_dict: Mapping[str, Any]) -> tuple[tuple[int | str, ...], bool, dict, dict]:
    """``(config, batch_norm, features, classifier)`` read from the names and shapes.

    ``features`` maps each conv index to its jdl conv name (and each BatchNorm index to
    its BatchNorm name); ``classifier`` maps each Linear index to ``fc1``, ``fc2``, ...,
    ``head``. Raises :class:`WeightFileError` for any other layout.
    """
    convs: dict[int, tuple[int, ...]] = {}
    norms: set[int] = set()
    linears: dict[int, tuple[int, ...]] = {}
    for name, value in state_dict.items():
        shape = tuple(np.shape(value))
        if m := _FEATURE.match(name):
            if m[2] == "weight" and len(shape) == 4:
                convs[int(m[1])] = shape
            elif m[2] == "running_mean":
                norms.add(int(m[1]))
        elif (m := _CLASSIFIER.match(name)) and m[2] == "weight" and len(shape) == 2:
            linears[int(m[1])] = shape
    if "pre_logits.fc1.weight" in state_dict:
        raise _refuse(
            "pre_logits.fc1 and head.fc are timm's VGG classifier (convolutions), which is "
            "not mapped; torchvision's VGG has classifier.0, 3, 6"
        )
    nested = [k for k in state_dict if re.match(r"^features\.\d+\.\d+\.", k)]
    if nested:
        raise _refuse(
            f"expected features.<index>.weight, found nested modules such as {nested[0]!r} "
            "(a MobileNet/EfficientNet-style network)"
        )
    if not convs:
        raise _refuse(f"no features.<index>.weight conv kernels among {list(state_dict)[:5]}")
    odd = [i for i, s in sorted(convs.items()) if s[2:] != (3, 3)]
    if odd:
        kh, kw = convs[odd[0]][2:]
        alexnet = " (this looks like AlexNet)" if 1 in linears else ""
        raise _refuse(
            f"features.{odd[0]}.weight is a {kh}x{kw} conv where VGG's are all 3x3{alexnet}"
        )
    batch_norm = bool(norms)
    step = 3 if batch_norm else 2
    unit = "conv, BatchNorm, ReLU" if batch_norm else "conv, ReLU"
    order = sorted(convs)
    config: list[int | str] = []
    for prev, i in zip([None, *order], order, strict=False):
        gap = i - (prev if prev is not None else -step)
        if gap < step:
            raise _refuse(
                f"features.{i} is {gap} after features.{prev}; torchvision's make_layers puts "
                f"each conv {step} indices ({unit}) after the previous one, plus one per max-pool"
            )
        config += ["M"] * (gap - step) + [int(convs[i][0])]
    config.append("M")  # every torchvision configuration ends with a max-pool
    if batch_norm and norms != {i + 1 for i in order}:
        raise _refuse(
            f"BatchNorms at features.{sorted(norms)} do not each follow a conv (convs at {order})"
        )
    names = [n for n, width in vgg_layer_plan(tuple(config)) if width is not None]
    features: dict[int, str] = {}
    for i, name in zip(order, names, strict=True):
        features[i] = name
        if batch_norm:
            features[i + 1] = name.replace("_conv", "_bn")
    lin = sorted(linears)
    if lin != [3 * k for k in range(len(lin))]:
        raise _refuse(
            f"Linear layers at classifier.{lin}; torchvision's VGG classifier has them at "
            "classifier.0, 3, 6 (Linear, ReLU, Dropout, ...)"
        )
    heads = [f"fc{k + 1}" for k in range(len(lin) - 1)] + ["head"] if lin else []
    return tuple(config), batch_norm, features, dict(zip(lin, heads, strict=True))


def _chw_rows_to_hwc(weight: np.ndarray, channels: int) -> np.ndarray:
    """torchvision's first Linear weight ``(out, C*s*s)`` (CHW order) -> jdl's ``(s*s*C, out)``."""
    out, features = weight.shape
    side = math.isqrt(features // channels)
    if side * side * channels != features:
        raise _refuse(
            f"the first classifier Linear takes {features} inputs, which is not C x s x s for "
            f"the last conv's C = {channels} channels"
        )
    return weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(features, out)


def torch_vgg_to_jdl(
    state_dict: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rename and re-layout a torchvision VGG state dict into flat jdl paths.

    The first classifier weight's rows are permuted from torchvision's channel-major flatten
    order to jdl's ``(height, width, channels)`` (see the module docstring).

    Returns:
      ``(flat, unmapped)``: ``{"params/block1_conv1/kernel": ..., "batch_stats/block1_bn1/mean":
      ...}`` in HWIO / ``(in, out)`` layouts, and the source names that match no VGG weight
      (``num_batches_tracked`` counters are dropped silently).

    Raises:
      WeightFileError: the names and shapes do not describe a torchvision VGG.

    Example:
      >>> import numpy as np
      >>> sd = {"features.0.weight": np.zeros((64, 3, 3, 3)), "features.0.bias": np.zeros(64)}
      >>> flat, _ = torch_vgg_to_jdl(sd)
      >>> {k: v.shape for k, v in flat.items()}
      {'params/block1_conv1/kernel': (3, 3, 3, 64), 'params/block1_conv1/bias': (64,)}
    """
    config, batch_norm, features, classifier = _layout(state_dict)
    last_width = int([e for e in config if e != "M"][-1])
    first_linear = min(classifier, default=None)
    flat: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    for name, value in state_dict.items():
        value = np.asarray(value)
        f, c = _FEATURE.match(name), _CLASSIFIER.match(name)
        module = features.get(int(f[1])) if f else classifier.get(int(c[1])) if c else None
        leaf = (f or c)[2] if module else ""
        if module is None:
            unmapped.append(name)
        elif "_bn" in module and leaf in _BN_LEAVES:
            collection, jleaf = _BN_LEAVES[leaf]
            flat[f"{collection}/{module}/{jleaf}"] = value
        elif "_bn" in module and leaf == "num_batches_tracked":
            continue
        elif leaf == "weight" and value.ndim == 4:
            flat[f"params/{module}/kernel"] = np.transpose(value, (2, 3, 1, 0))  # OIHW -> HWIO
        elif leaf == "weight" and value.ndim == 2 and int(c[1]) == first_linear:
            flat[f"params/{module}/kernel"] = _chw_rows_to_hwc(value, last_width)
        elif leaf == "weight" and value.ndim == 2:
            flat[f"params/{module}/kernel"] = value.T
        elif leaf == "bias" and value.ndim == 1:
            flat[f"params/{module}/bias"] = value
        else:
            unmapped.append(name)
    return flat, unmapped


def vgg_from_state_dict(state_dict: Mapping[str, np.ndarray], **kwargs: Any) -> VGG:
    """The :class:`~jdl.nn.VGG` whose architecture a torchvision VGG state dict describes.

    The configuration comes from the conv indices and widths (``"vgg11"`` ... ``"vgg19"``
    when it is one of them, else the sequence of widths and ``"M"``), ``batch_norm`` from the
    presence of BatchNorm statistics, ``classifier`` and ``num_outputs`` from the Linear
    shapes; dropout is torchvision's 0.5.

    Args:
      state_dict: name -> array.
      **kwargs: other VGG fields (``dtype``, ...), overriding those read.

    Raises:
      WeightFileError: the names do not describe a torchvision VGG, or it has no classifier.

    Example:
      >>> import numpy as np
      >>> sd = {"features.0.weight": np.zeros((8, 3, 3, 3)), "features.3.weight":
      ...       np.zeros((16, 8, 3, 3)), "classifier.0.weight": np.zeros((10, 16 * 49))}
      >>> vgg_from_state_dict(sd).config
      (8, 'M', 16, 'M')
    """
    config, batch_norm, _, classifier = _layout(state_dict)
    if not classifier:
        raise _refuse("no classifier.<index>.weight Linear layers (pass model= to load a backbone)")
    outs = [int(np.shape(state_dict[f"classifier.{i}.weight"])[0]) for i in sorted(classifier)]
    names = [k for k, c in VGG_CONFIGS.items() if c == config]
    settings: dict[str, Any] = dict(
        config=names[0] if names else config,
        batch_norm=batch_norm,
        classifier=tuple(outs[:-1]),
        num_outputs=outs[-1],
    )
    settings.update(kwargs)
    return VGG(**settings)


def vgg_input_side(state_dict: Mapping[str, np.ndarray]) -> int:
    """The input side (224 for torchvision's VGGs) at which the final feature map fits the
    first Linear (7 x 7), i.e. where jdl computes what torchvision computes."""
    config, _, _, classifier = _layout(state_dict)
    if not classifier:
        return 224
    channels = int([e for e in config if e != "M"][-1])
    inputs = int(np.shape(state_dict[f"classifier.{min(classifier)}.weight"])[1])
    return 2 ** config.count("M") * max(1, math.isqrt(inputs // channels))


def describe_vgg(model: VGG) -> str:
    """``"VGG-16 with BatchNorm"`` or ``"VGG (config (8, 'M')) without BatchNorm"``."""
    plan = vgg_layer_plan(model.config)
    names = [k for k, c in VGG_CONFIGS.items() if vgg_layer_plan(c) == plan]
    label = f"VGG-{names[0][3:]}" if names else f"VGG (config {tuple(model.config)})"
    return f"{label} {'with' if model.batch_norm else 'without'} BatchNorm"


def jdl_vgg_to_torch(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of :func:`torch_vgg_to_jdl`: jdl VGG variables -> a torchvision state dict.

    torchvision indices follow from the layer names alone (each ``block{b}`` ends with a
    max-pool); the first classifier kernel's rows go back to torchvision's channel-major
    order. ``num_batches_tracked`` is not produced (load with ``strict=False`` in torch, or
    add it).

    Raises:
      ValueError: a variable that is not a VGG conv, BatchNorm or classifier weight.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jdl.nn import VGG
      >>> model = VGG((4, "M", 8, "M"), num_outputs=3, classifier=(5,), batch_norm=True)
      >>> init = lambda x: model.init(jax.random.key(0), x, train=False)
      >>> shapes = jax.eval_shape(init, jnp.ones((1, 8, 8, 3)))  # no memory used
      >>> v = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
      >>> {k: w.shape for k, w in jdl_vgg_to_torch(v).items() if k.endswith("weight")}
      {'features.0.weight': (4, 3, 3, 3), 'features.1.weight': (4,), 'features.4.weight': (8, 4, 3, 3), 'features.5.weight': (8,), 'classifier.0.weight': (5, 32), 'classifier.3.weight': (3, 5)}
    """  # noqa: E501
    flat = flatten(variables)
    module_re = re.compile(r"^(params|batch_stats)/(block(\d+)_(conv|bn)(\d+)|fc(\d+)|head)/(\w+)$")
    parsed = {path: module_re.match(path) for path in flat}
    bad = [p for p, m in parsed.items() if m is None]
    if bad:
        raise ValueError(f"not jdl VGG variables: {bad[:5]} are no VGG conv/BN/Dense weights")
    convs = sorted({(int(m[3]), int(m[5])) for m in parsed.values() if m[4] == "conv"})
    if not convs:
        raise ValueError(f"not jdl VGG variables: no block<b>_conv<c> among {list(flat)[:5]}")
    step = 3 if any(m[4] == "bn" for m in parsed.values()) else 2
    index: dict[str, int] = {}
    i, block = 0, convs[0][0] if convs else 1
    for b, c in convs:
        i += b - block  # one max-pool per block boundary
        block = b
        index[f"block{b}_conv{c}"], index[f"block{b}_bn{c}"] = i, i + 1
        i += step
    fcs = sorted({int(m[6]) for m in parsed.values() if m[6]})
    linears = [f"fc{k}" for k in fcs] + ["head"]
    position = {name: 3 * k for k, name in enumerate(linears)}
    last_width = int(np.shape(flat[f"params/block{convs[-1][0]}_conv{convs[-1][1]}/kernel"])[-1])
    inverse = {v: k for k, v in _BN_LEAVES.items()}
    out: dict[str, np.ndarray] = {}
    for path, m in parsed.items():
        value = np.asarray(flat[path])
        collection, module, leaf = m[1], m[2], m[7]
        if module in position:
            name = f"classifier.{position[module]}"
            if leaf == "kernel" and position[module] == 0:
                s = math.isqrt(value.shape[0] // last_width)
                value = value.reshape(s, s, last_width, -1).transpose(3, 2, 0, 1)
                out[f"{name}.weight"] = value.reshape(value.shape[0], -1)
            else:
                out[f"{name}.{'weight' if leaf == 'kernel' else leaf}"] = (
                    value.T if leaf == "kernel" else value
                )
        elif m[4] == "bn":
            out[f"features.{index[module]}.{inverse[(collection, leaf)]}"] = value
        elif leaf == "kernel":
            out[f"features.{index[module]}.weight"] = np.transpose(value, (3, 2, 0, 1))
        else:
            out[f"features.{index[module]}.{leaf}"] = value
    leaves = ("weight", "bias", "running_mean", "running_var")
    order = lambda k: (k[0] == "c", int(k.split(".")[1]), leaves.index(k.split(".")[2]))  # noqa: E731
    return {k: out[k] for k in sorted(out, key=order)}  # torchvision's order
