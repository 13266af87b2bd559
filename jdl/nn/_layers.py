"""Layer builders shared by the jdl models (private)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn


def batch_norm(owner: Any, *, train: bool, name: str) -> nn.BatchNorm:
    """A BatchNorm configured from a model's ``bn_*``/dtype fields (call inside ``compact``).

    ``owner`` supplies ``bn_momentum``, ``bn_epsilon``, ``bn_axis_name``, ``dtype`` and
    ``param_dtype``; the layer uses batch statistics when ``train`` and running ones otherwise.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=owner.bn_momentum,
        epsilon=owner.bn_epsilon,
        axis_name=owner.bn_axis_name,
        dtype=owner.dtype,
        param_dtype=owner.param_dtype,
        name=name,
    )
