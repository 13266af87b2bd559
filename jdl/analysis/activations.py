"""Per-layer activation statistics: mean, spread, saturated and dead units, histograms.

What counts as a layer's activation: layers are grouped as "a weighted layer (Dense, Conv,
...) followed by the normalisation layers called right after it" (``Dense_3`` +
``BatchNorm_3`` in a jdl MLP). The activation of a hidden group is the model's hidden
activation (``model.activation`` for jdl models, or the ``activation`` argument) applied to
the output of the group's last member; the output layer is reported as it is (logits).

- *saturated*: for ``tanh``, ``|a| > 0.99`` (``tanh' < 0.02``); for ``sigmoid``, ``a < 0.01``
  or ``a > 0.99`` (``sigmoid' < 0.01``). The fraction is over all entries (examples x units).
  Other activations never count as saturated.
- *dead*: a unit (a feature, or a channel of a conv layer: the last axis) whose activation
  is exactly 0 for every example of the batch (and every position) -- a ReLU that never fires
  passes no gradient and, under plain SGD, never recovers.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import numpy as np

from jdl.analysis._probe import probe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ActivationStats", "LayerActivations", "activation_stats"]


@dataclasses.dataclass(frozen=True)
class LayerActivations:
    """Activation statistics of one layer over a batch.

    Attributes:
      name: layer path.
      mean: mean over all entries.
      std: standard deviation over all entries.
      dead_fraction: fraction of units that output exactly 0 for the whole batch.
      saturated_fraction: fraction of entries near the activation's limits.
      counts: histogram counts (``bins`` values).
      edges: histogram bin edges (``bins + 1`` values).
    """

    name: str
    mean: float
    std: float
    dead_fraction: float
    saturated_fraction: float
    counts: np.ndarray
    edges: np.ndarray


class ActivationStats(collections.abc.Mapping):
    """``{layer path: LayerActivations}`` in forward order, printable, with ``.plot()``."""

    def __init__(
        self,
        layers: list[LayerActivations],
        activation: str | None,
        output_layers: tuple[str, ...] = (),
    ) -> None:
        self._layers = {layer.name: layer for layer in layers}
        self.activation = activation
        #: the layers of the output group (their statistics are of the logits)
        self.output_layers = tuple(output_layers)

    def __getitem__(self, name: str) -> LayerActivations:
        return self._layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __str__(self) -> str:
        rows = [f"{'layer':<24} {'mean':>10} {'std':>10} {'dead':>6} {'saturated':>9}"]
        for s in self._layers.values():
            rows.append(
                f"{s.name:<24} {s.mean:>10.3g} {s.std:>10.3g} {s.dead_fraction:>6.0%} "
                f"{s.saturated_fraction:>9.0%}"
            )
        return "\n".join(rows)

    __repr__ = __str__

    def plot(
        self, *, ax: Axes | None = None, max_layers: int = 8, title: str | None = None
    ) -> Figure:
        """Histograms of the hidden layers' activations, one row per layer, input at the top.

        Each row is one layer's histogram scaled to its own peak (the layers' spreads differ
        by orders of magnitude, so a shared y-axis would flatten all but one). The output
        layer is left out: its values are logits, on another scale than the activations.

        Args:
          ax: draw into these axes (default: a new figure).
          max_layers: at most this many layers' histograms (evenly spaced by depth).
          title: the axes' title (default: ``"<activation> activations of the hidden
            layers"``).

        Returns:
          The matplotlib ``Figure`` (as every jdl ``plot()``; its axes: ``fig.axes``).
        """
        from jdl.analysis.plots import _plot_activation_histograms

        return _plot_activation_histograms(self, ax=ax, max_layers=max_layers, title=title).figure


def activation_stats(
    model: nn.Module,
    variables: Any,
    batch: Any,
    *,
    activation: Any = "auto",
    layers: Any = None,
    train: bool = True,
    seed: int = 0,
    bins: int = 40,
) -> ActivationStats:
    """Mean, std, dead and saturated fractions and a histogram of every layer's activation.

    Args:
      model: any ``flax.linen`` module.
      variables: ``{"params": ...}`` (plus ``"batch_stats"``), a ``TrainState`` or ``History``.
      batch: a dict with ``"x"`` (``"y"`` is not needed; ``"lengths"`` reach a model that
        takes them) or an input array.
      activation: the hidden activation (name or callable); ``"auto"`` uses
        ``model.activation`` where the model has one, else analyses layer outputs as they are.
      layers: restrict to these layer paths (all by default).
      train: training mode (BatchNorm on batch statistics).
      seed: dropout seed.
      bins: number of histogram bins.

    Returns:
      An :class:`ActivationStats` mapping in forward order. Layers computed inside a lifted
      ``scan`` (recurrent cells) are left out: their outputs cannot be captured.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import MLP
      >>> model = MLP(widths=(64, 64), num_outputs=2, activation="tanh", kernel_init=1.0)
      >>> v = model.init(jax.random.key(0), jnp.ones((1, 8)), train=False)
      >>> stats = activation_stats(model, v, {"x": jax.random.normal(jax.random.key(1), (64, 8))})
      >>> stats["Dense_1"].saturated_fraction > 0.5
      True
    """
    result = probe(
        model,
        variables,
        batch,
        None,
        layers=layers,
        activation=activation,
        train=train,
        seed=seed,
        bins=bins,
    )
    out = []
    for layer in result.layers:
        name = layer.name
        if name not in result.mean:
            continue
        counts, edges = result.hist[name]
        out.append(
            LayerActivations(
                name=name,
                mean=result.mean[name],
                std=result.std[name],
                dead_fraction=result.dead[name],
                saturated_fraction=result.saturated[name],
                counts=counts,
                edges=edges,
            )
        )
    return ActivationStats(out, result.activation, result.output_layers)
