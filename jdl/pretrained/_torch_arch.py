"""What a torchvision state dict's architecture is, and when a load must be refused for it.

Private helpers of :mod:`jdl.pretrained.torch`: naming ResNet variants that jdl does not
implement (ResNeXt, Wide ResNet, ...), describing models for messages, and the rule of
``strict=False`` (only the head may differ).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jdl.nn.resnet import BasicBlock, Bottleneck, ResNet
from jdl.nn.vgg import VGG
from jdl.pretrained.errors import WeightFileError
from jdl.pretrained.torch_vgg import describe_vgg


def resnet_variant(state_dict: Mapping[str, Any]) -> str | None:
    """The name of a ResNet variant that jdl does not implement, or None."""
    if "conv1.0.weight" in state_dict:
        return "deep-stem ResNet (timm resnet*d/c: stem conv1.0, conv1.1, ...)"
    if any(re.match(r"^layer\d+\.\d+\.se\.", k) for k in state_dict):
        return "SE-ResNet (squeeze-and-excitation modules layer*.*.se)"
    shapes = [np.shape(state_dict.get(f"layer1.0.conv{k}.weight", ())) for k in (1, 2, 3)]
    if any(len(shape) != 4 for shape in shapes):
        return None  # not a bottleneck (torchvision's BasicBlock has no groups or width)
    (width, *_), (_, per_group, *_), (out, *_) = shapes
    groups = width // per_group if per_group and width % per_group == 0 else 1
    if groups > 1:
        return f"ResNeXt (groups={groups}, width {per_group})"
    if width * Bottleneck.expansion != out:
        return f"Wide ResNet (width x{width * Bottleneck.expansion / out:g})"
    return None


_DEPTHS = {
    ((2, 2, 2, 2), BasicBlock): 18,
    ((3, 4, 6, 3), BasicBlock): 34,
    ((3, 4, 6, 3), Bottleneck): 50,
    ((3, 4, 23, 3), Bottleneck): 101,
    ((3, 8, 36, 3), Bottleneck): 152,
}


def describe(model: Any) -> str:
    """``"ResNet-50 (Bottleneck blocks, stages (3, 4, 6, 3), width 64)"``, ``"VGG-16 ..."``."""
    if isinstance(model, VGG):
        return describe_vgg(model)
    if isinstance(model, ResNet):
        stages, block = tuple(model.stage_sizes), model.block_cls
        depth = _DEPTHS.get((stages, block))
        return (
            f"ResNet{f'-{depth}' if depth else ''} ({block.__name__} blocks, stages {stages}, "
            f"width {model.width})"
        )
    return type(model).__name__


def architecture_check(weights: Callable[[], Any], model: Any, *, strict: bool) -> Any:
    """``merge_into``'s ``refuse``: differences outside the head refuse a non-strict load.

    The head is the ResNet's ``fc`` or the VGG's classifier (``fc1``, ..., ``head``); source
    names outside the network (neither ``conv1``/``bn1``/``layer*`` nor ``features``) are
    bookkeeping, tolerated by ``strict=False``. ``weights()`` builds the model the weights
    describe (for the message). A strict load gets the architectures named when they differ.
    """
    head = r"fc\d*|head|classifier" if isinstance(model, VGG) else getattr(model, "head_name", "fc")

    def in_network(name: str) -> bool:
        if "/" in name:  # a jdl path: params/<module>/...
            return re.fullmatch(head, name.split("/")[1]) is None
        return re.match(r"^(conv1|bn1|layer\d+|features)\.", name) is not None

    def refuse(missing, unexpected, mismatched):
        other = [n for n in [*missing, *unexpected, *(m[0] for m in mismatched)] if in_network(n)]
        if not other:
            return None
        try:
            found = describe(weights())
        except WeightFileError:
            found = "of an unrecognised architecture"
        expected = describe(model)
        example = f"{len(other)} differences outside the head, e.g. {other[0]}"
        if found != expected:
            summary = f"the weights are {found}, the model is {expected}: another architecture"
        elif strict:
            return None
        else:
            summary = f"the weights ({found}, as the model) differ from it outside the head"
        hint = (
            "strict=False only tolerates a different head (the ResNet's fc, the VGG's "
            "classifier: fc1, ..., head) and extra bookkeeping entries; it does not load part "
            "of a network and leave the rest at random values. Fix: omit model= to get the "
            "model the weights describe, or build that architecture."
        )
        return f"{summary} ({example})", hint

    return refuse
