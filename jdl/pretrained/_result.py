"""The value every loader returns (private module; the class is public)."""

from __future__ import annotations

import dataclasses
from typing import Any

from jdl.pretrained._tree import LoadReport


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A model with loaded weights.

    Attributes:
      model: the ``flax.linen`` module (unbound).
      variables: its variables, ``{"params": ..., "batch_stats": ...}``, ready for
        ``model.apply(variables, x, train=False)``.
      report: the :class:`~jdl.pretrained.LoadReport` (complete unless ``strict=False``).
      info: what the weights expect of their inputs and how they were made, e.g.
        ``{"mean": (...), "std": (...), "input_size": 224, "channel_order": "RGB", ...}``
        (see :mod:`jdl.pretrained.preprocess`); empty when unknown.
    """

    model: Any
    variables: dict[str, Any]
    report: LoadReport
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __iter__(self):
        """Unpack as ``model, variables = pretrained``."""
        return iter((self.model, self.variables))
