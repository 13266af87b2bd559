"""torchvision / timm ResNet and torchvision VGG state dicts -> jdl variables.

:func:`from_torchvision` is the entry point: it recognises the architecture from the
state dict's names and shapes -- ResNet (block type, blocks per stage, stem width) or VGG
(configuration, BatchNorm or not; mapped by :mod:`jdl.pretrained.torch_vgg`) -- builds the
jdl model and loads it. Supported: torchvision/timm ResNet-18, 34, 50, 101, 152 and
torchvision VGG-11, 13, 16, 19 with or without BatchNorm. Other architectures are refused
by name: ResNeXt (grouped 3x3 convs), Wide ResNet (widened bottlenecks), deep-stem ResNets
(timm's ``resnet50d``, ...), SE-ResNets, AlexNet, ...

torchvision and timm name ResNet weights the same way (``conv1``, ``bn1``,
``layer{s}.{i}.conv{k}``, ``.bn{k}``, ``.downsample.0`` / ``.downsample.1``, ``fc``), and
:class:`jdl.nn.ResNet` mirrors that tree with ``.`` -> ``_`` between stage and block. The
layout conversions, all explicit here:

=============================================  ===========================================
PyTorch                                        jdl
=============================================  ===========================================
``<conv>.weight`` (O, I, kH, kW)               ``params/<conv>/kernel`` (kH, kW, I, O)
``fc.weight`` (out, in)                        ``params/fc/kernel`` (in, out), transposed
``fc.bias``                                    ``params/fc/bias``
``<bn>.weight`` / ``<bn>.bias``                ``params/<bn>/scale`` / ``params/<bn>/bias``
``<bn>.running_mean`` / ``running_var``        ``batch_stats/<bn>/mean`` / ``var``
``<bn>.num_batches_tracked``                   dropped (a counter, not a weight)
``layer2.0.downsample.0`` / ``.1``             ``layer2_0/downsample_conv`` / ``_bn``
=============================================  ===========================================

Files: ``.safetensors`` (timm's hub layout ``model.safetensors``; read with safetensors' numpy
API, torch not needed) or ``.pth`` through ``torch.load(weights_only=True)`` when torch is
installed. torchvision's ResNet-50 is v1.5 (stride on the 3x3 conv), as is jdl's default
(``stride_in_1x1=False``; Keras' v1 nets use ``True``); timm's plain
``resnet*`` models (``.tv_in1k``, ``.a1_in1k``, ...) are too.

torchvision's VGGs flatten their last feature map in ``(channels, height, width)`` order
where :class:`jdl.nn.VGG` flattens ``(height, width, channels)``: the first classifier
weight's rows are permuted (see :mod:`jdl.pretrained.torch_vgg`, also for the input sizes,
224 to 255 pixels, at which the two compute the same function).

**strict=False** tolerates a different *head* only -- the ResNet's ``fc``, the VGG's
classifier (``fc1``, ``fc2``, ``head``): missing, unexpected or of another size, e.g. another
number of classes or a VGG at another input size -- and extra entries outside the network
(bookkeeping such as counters). Weights of another architecture (basic vs bottleneck
blocks, another depth, width or group count, BatchNorm or not, VGG vs ResNet) are refused
with a :class:`~jdl.pretrained.WeightMismatchError` naming both architectures, rather than
loading part of the network and leaving the rest at random values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jdl._core.tree import flatten
from jdl.nn.resnet import BasicBlock, Bottleneck, ResNet
from jdl.nn.vgg import VGG
from jdl.pretrained import _files
from jdl.pretrained._result import Pretrained
from jdl.pretrained._torch_arch import architecture_check, resnet_variant
from jdl.pretrained._tree import merge_into
from jdl.pretrained.errors import WeightFileError
from jdl.pretrained.torch_vgg import (
    SUPPORTED,
    is_torch_vgg,
    torch_vgg_to_jdl,
    vgg_from_state_dict,
    vgg_input_side,
)

__all__ = [
    "from_timm",
    "from_torchvision",
    "read_state_dict",
    "resnet_from_state_dict",
    "torch_resnet_to_jdl",
    "jdl_resnet_to_torch",
]

_BN_LEAVES = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}
_MODULE = re.compile(
    r"^(?:(?P<stem>conv1|bn1|fc)"
    r"|layer(?P<stage>\d+)\.(?P<block>\d+)\.(?P<sub>conv\d|bn\d|downsample\.[01]))$"
)


def read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A PyTorch state dict as ``name -> numpy array``.

    Args:
      source: a ``.safetensors`` file, a ``.pth``/``.pt``/``.bin`` file (needs torch; loaded
        with ``weights_only=True``), or a mapping of arrays / torch tensors.

    Raises:
      WeightFileError: a corrupt or truncated file, or a pickle file that cannot be loaded
        safely (``torch.load(weights_only=True)``, never plain pickle).
    """
    if isinstance(source, Mapping):
        out = {}
        for k, v in source.items():
            if hasattr(v, "detach"):
                v = v.detach().cpu().float().numpy() if v.is_floating_point() else v.numpy()
            out[str(k)] = np.asarray(v)
        return out
    path = os.fspath(source)
    if path.endswith(".safetensors"):
        return _files.read_safetensors(path)[0]
    if _files.is_pickle_file(path):
        return _files.read_torch_pickle(path)
    raise WeightFileError(
        f"cannot tell the format of {path!r}: expected a .safetensors file (preferred) or a "
        f"PyTorch {'/'.join(_files.PICKLE_SUFFIXES)} file"
    )


def _module_path(name: str) -> str | None:
    m = _MODULE.match(name)
    if m is None:
        return None
    if m["stem"]:
        return m["stem"]
    sub = (
        m["sub"].replace("downsample.0", "downsample_conv").replace("downsample.1", "downsample_bn")
    )
    return f"layer{m['stage']}_{m['block']}/{sub}"


def torch_resnet_to_jdl(
    state_dict: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rename and re-layout a torchvision/timm ResNet state dict into flat jdl paths.

    Returns:
      ``(flat, unmapped)``: ``{"params/conv1/kernel": ..., "batch_stats/bn1/mean": ...}``
      with kernels in HWIO / (in, out) layout, and the source names that match no ResNet
      weight (``num_batches_tracked`` counters are dropped silently).

    Example:
      >>> import numpy as np
      >>> flat, _ = torch_resnet_to_jdl({"layer2.0.downsample.0.weight": np.zeros((128, 64, 1, 1))})
      >>> {k: v.shape for k, v in flat.items()}
      {'params/layer2_0/downsample_conv/kernel': (1, 1, 64, 128)}
    """
    flat: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    for name, value in state_dict.items():
        value = np.asarray(value)
        module, _, leaf = name.rpartition(".")
        path = _module_path(module)
        if leaf == "num_batches_tracked" and path is not None:
            continue
        kind = path.rsplit("/", 1)[-1] if path else ""
        if path is None:
            unmapped.append(name)
        elif kind.startswith("conv") or kind == "downsample_conv":
            if leaf != "weight" or value.ndim != 4:
                unmapped.append(name)
                continue
            flat[f"params/{path}/kernel"] = np.transpose(value, (2, 3, 1, 0))  # OIHW -> HWIO
        elif kind == "fc":
            if leaf == "weight" and value.ndim == 2:
                flat["params/fc/kernel"] = value.T
            elif leaf == "bias":
                flat["params/fc/bias"] = value
            else:
                unmapped.append(name)
        elif leaf in _BN_LEAVES:  # bn1, bn{k}, downsample_bn
            collection, jleaf = _BN_LEAVES[leaf]
            flat[f"{collection}/{path}/{jleaf}"] = value
        else:
            unmapped.append(name)
    return flat, unmapped


def jdl_resnet_to_torch(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of :func:`torch_resnet_to_jdl`: jdl ResNet variables -> a torchvision state dict.

    ``num_batches_tracked`` is not produced (load with ``strict=False`` in torch, or add it).
    Only the variables are converted: a v1 model (``ResNet(..., stride_in_1x1=True)``, e.g.
    loaded from Keras) gives a state dict that torchvision, which is v1.5, runs with the
    stride on the 3x3 conv instead -- the same weights computing a different function.
    """
    out: dict[str, np.ndarray] = {}
    inverse = {v: k for k, v in _BN_LEAVES.items()}
    for path, value in flatten(variables).items():
        value = np.asarray(value)
        collection, *modules, leaf = path.split("/")
        module = ".".join(modules)
        module = re.sub(r"^layer(\d+)_(\d+)", r"layer\1.\2", module)
        module = module.replace("downsample_conv", "downsample.0").replace(
            "downsample_bn", "downsample.1"
        )
        if leaf == "kernel" and value.ndim == 4:
            out[f"{module}.weight"] = np.transpose(value, (3, 2, 0, 1))
        elif leaf == "kernel":
            out[f"{module}.weight"] = value.T
        elif (collection, leaf) in inverse:
            out[f"{module}.{inverse[(collection, leaf)]}"] = value
        else:
            out[f"{module}.{leaf}"] = value
    return out


def resnet_from_state_dict(state_dict: Mapping[str, np.ndarray], **kwargs: Any) -> ResNet:
    """The :class:`~jdl.nn.ResNet` whose architecture a torchvision/timm state dict describes.

    Reads the block type (``conv3`` present -> Bottleneck), the blocks per stage, the stem
    width and the number of classes from the names and shapes.

    Args:
      state_dict: name -> array.
      **kwargs: other ResNet fields (``dtype``, ...).

    Raises:
      WeightFileError: if the names do not describe a torchvision-style ResNet, or describe a
        variant that jdl does not implement (ResNeXt, Wide ResNet, ...; named in the message).
    """
    variant = resnet_variant(state_dict)
    if variant:
        raise WeightFileError(
            f"these weights are a {variant} state dict, an architecture jdl.nn.ResNet does not "
            f"implement. Supported: {SUPPORTED}"
        )
    blocks: dict[int, int] = {}
    for name in state_dict:
        m = re.match(r"^layer(\d+)\.(\d+)\.", name)
        if m:
            s, i = int(m[1]), int(m[2])
            blocks[s] = max(blocks.get(s, 0), i + 1)
    needed = ("conv1.weight", "fc.weight")
    if not blocks or any(k not in state_dict for k in needed):
        found = ", ".join(list(state_dict)[:5])
        raise WeightFileError(
            "these weights are not a torchvision/timm ResNet state dict (expected conv1.weight, "
            f"layer1.0.*, ..., fc.weight); first names found: {found}. Supported: {SUPPORTED}"
        )
    stages = tuple(blocks[s] for s in sorted(blocks))
    if sorted(blocks) != list(range(1, len(blocks) + 1)):
        raise WeightFileError(f"ResNet stages must be layer1..layerN, found {sorted(blocks)}")
    bottleneck = "layer1.0.conv3.weight" in state_dict
    settings = dict(
        stage_sizes=stages,
        block_cls=Bottleneck if bottleneck else BasicBlock,
        num_outputs=int(np.shape(state_dict["fc.weight"])[0]),
        width=int(np.shape(state_dict["conv1.weight"])[0]),
    )
    settings.update(kwargs)
    return ResNet(**settings)


def _weights_model(state_dict: Mapping[str, Any], vgg: bool) -> ResNet | VGG:
    """The model a state dict describes, head or not (its classes do not matter here)."""
    head = ("classifier.0.weight", "fc.weight")[not vgg]
    with_head = {head: np.zeros((1, 1)), **state_dict}
    return (vgg_from_state_dict if vgg else resnet_from_state_dict)(with_head)


def from_torchvision(
    source: str | os.PathLike | Mapping[str, Any],
    model: ResNet | VGG | None = None,
    *,
    strict: bool = True,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Pretrained:
    """Load a torchvision ResNet or VGG (or timm ResNet) state dict into a jdl model.

    The architecture is read from the names and shapes: ResNet-18/34/50/101/152 (any stage
    sizes and stem width) -> :class:`~jdl.nn.ResNet`, VGG-11/13/16/19 with or without
    BatchNorm -> :class:`~jdl.nn.VGG`. Other architectures (ResNeXt, Wide ResNet, ...) raise
    :class:`~jdl.pretrained.WeightFileError` naming them.

    Args:
      source: a ``.safetensors`` file, a ``.pth`` file (torch needed; ``weights_only=True``),
        or a state dict (mapping of numpy arrays or torch tensors).
      model: the ResNet or VGG to load into; by default the one the state dict describes
        (:func:`resnet_from_state_dict`, e.g. ``resnet50(num_outputs=1000)``, or
        :func:`vgg_from_state_dict`, e.g. ``vgg16(batch_norm=True)``).
      strict: raise :class:`~jdl.pretrained.WeightMismatchError` listing every missing,
        unexpected and shape-mismatched weight. ``False`` tolerates a different head (fc or
        VGG classifier; freshly initialised) and extra bookkeeping entries, and reports them;
        weights of another architecture (block type, depth, width, groups, BatchNorm, VGG vs
        ResNet) are refused all the same.
      input_shape: a batch shape to work out the variable shapes (default
        ``(1, 224, 224, C)``, for a VGG the size whose final feature map fits its first
        Linear; only shapes are computed). jdl's VGG has no adaptive pooling: it computes
        torchvision's function at 224 to 255 pixels a side.
      seed: initial values for variables not loaded (``strict=False``).

    Returns:
      A :class:`~jdl.pretrained.Pretrained` with ``model``, ``variables`` (``params`` and
      ``batch_stats``), the ``report`` and ImageNet preprocessing ``info``.

    Raises:
      WeightFileError: an unreadable file, or weights of an architecture not supported.
      WeightMismatchError: weights that do not fit ``model`` (``strict=True``), or that are
        of another architecture than ``model`` (even with ``strict=False``).

    Example:
      >>> # on a machine with torchvision: save a state dict as safetensors once, then
      >>> # p = jdl.pretrained.from_torchvision("resnet18.safetensors")   # or vgg16_bn
      >>> # logits = p.model.apply(p.variables, images_nhwc, train=False)
    """
    state_dict = read_state_dict(source)
    if resnet_variant(state_dict):
        resnet_from_state_dict(state_dict)  # raises, naming the variant
    resnet_names = any(_MODULE.match(k.rpartition(".")[0]) for k in state_dict)
    vgg = is_torch_vgg(state_dict) or (isinstance(model, VGG) and not resnet_names)
    if vgg:
        model = vgg_from_state_dict(state_dict) if model is None else model
        flat, unmapped = torch_vgg_to_jdl(state_dict)
        stem, side = state_dict.get("features.0.weight"), vgg_input_side(state_dict)
    else:
        model = resnet_from_state_dict(state_dict) if model is None else model
        flat, unmapped = torch_resnet_to_jdl(state_dict)
        stem, side = state_dict.get("conv1.weight"), 224
    channels = int(np.shape(stem)[1]) if stem is not None and np.ndim(stem) == 4 else 3
    name = source if isinstance(source, str | os.PathLike) else "the state dict"
    variables, report = merge_into(
        model,
        flat,
        input_shape=input_shape or (1, side, side, channels),
        strict=strict,
        seed=seed,
        unexpected=unmapped,
        source=f"torchvision weights {str(name)!r}" if name != "the state dict" else name,
        refuse=architecture_check(lambda: _weights_model(state_dict, vgg), model, strict=strict),
    )
    from jdl.pretrained.preprocess import TORCHVISION

    return Pretrained(model=model, variables=variables, report=report, info=dict(TORCHVISION))


def from_timm(
    source: str | os.PathLike | Mapping[str, Any],
    model: ResNet | None = None,
    **kwargs: Any,
) -> Pretrained:
    """Load a timm ResNet (``resnet18`` ... ``resnet152``; e.g. a hub ``model.safetensors``).

    timm's plain ResNets use torchvision's names and layouts, so this is
    :func:`from_torchvision`; the same arguments apply.
    """
    return from_torchvision(source, model, **kwargs)
