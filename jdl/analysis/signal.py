"""Signal-propagation plots (Brock, De & Smith 2021, "Characterizing signal propagation to
close the performance gap in unnormalized ResNets").

At a sequence of points through the network -- the outputs of successive residual blocks --
three numbers summarise the hidden activations ``h`` of shape ``(batch, ..., channels)``:

- ``mean_sq``: the average over channels of the squared channel mean,
  ``mean_c (E[h_c])^2``;
- ``variance``: the average over channels of the channel variance, ``mean_c Var[h_c]``;
- ``residual_variance``: the same average channel variance of what the block *added* to its
  input, ``out - in`` (the residual branch, for ``h + f(h)``); ``nan`` where the block
  changes the shape (downsampling blocks).

(Expectations are over the batch and every spatial position.) For a BatchNorm-ReLU
residual stack the residual-branch variance stays near a constant and the total variance
grows linearly with depth (each block adds a roughly constant, nearly independent amount);
without normalisation the variance explodes exponentially.

Measurement points (``points="auto"``): if the model has *blocks* -- direct children that
contain parameterised modules of their own (``layer1_0`` ... of a ResNet) -- their outputs;
otherwise (a jdl ``MLP``, whose skips live in the parent) the input of every weighted layer
after the first, i.e. the hidden state between layers, where "what the block added" is the
difference from the previous point.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl.analysis._layers import (
    batch_extras,
    batch_xy,
    discover_layers,
    instrumented_pass,
    natural_key,
)
from jdl.train.state import _as_variables

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SignalPropagation", "channel_stats", "signal_propagation"]


@dataclasses.dataclass
class SignalPropagation:
    """Result of :func:`signal_propagation` (numpy arrays, one entry per point).

    Attributes:
      names: the measurement points (module paths).
      mean_sq: average squared channel mean.
      variance: average channel variance.
      residual_variance: average channel variance of the residual branch (``out - in``).
    """

    names: list[str]
    mean_sq: np.ndarray
    variance: np.ndarray
    residual_variance: np.ndarray

    @property
    def depth(self) -> np.ndarray:
        """The depth index of each point, ``1, 2, ...``."""
        return np.arange(1, len(self.names) + 1)

    def __str__(self) -> str:
        rows = [f"{'point':<20} {'mean^2':>10} {'variance':>10} {'residual var':>13}"]
        for i, name in enumerate(self.names):
            rows.append(
                f"{name:<20} {self.mean_sq[i]:>10.3g} {self.variance[i]:>10.3g} "
                f"{self.residual_variance[i]:>13.3g}"
            )
        return "\n".join(rows)

    __repr__ = __str__

    def plot(
        self,
        *,
        axes: Sequence[Axes] | None = None,
        label: str | None = None,
        log: bool = True,
        title: str | None = None,
    ) -> Figure:
        """The three curves of Brock et al. side by side (log y-axis by default).

        Args:
          axes: three axes to draw into, e.g. ``fig.axes`` of an earlier plot, to compare
            networks on one figure (default: a new figure, with constrained layout).
          label: the legend label of these curves (one legend for the three panels, below
            them).
          log: log-scale y-axes.
          title: the figure's title (``fig.suptitle``), laid out above the panels.

        Returns:
          The matplotlib ``Figure`` (as every jdl ``plot()``; its three axes: ``fig.axes``).
        """
        from jdl.analysis.plots import _plot_signal_propagation

        return _plot_signal_propagation(self, axes=axes, label=label, log=log, title=title)[
            0
        ].figure


def channel_stats(h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mean_c E[h_c]^2, mean_c Var[h_c])`` over batch and positions, channels last."""
    flat = h.astype(jnp.float32).reshape(-1, h.shape[-1])
    mean = jnp.mean(flat, axis=0)
    var = jnp.var(flat, axis=0)
    return jnp.mean(jnp.square(mean)), jnp.mean(var)


def _blocks(params: dict) -> list[str]:
    def has_nested(node: Any) -> bool:
        return isinstance(node, dict) and any(isinstance(v, dict) for v in node.values())

    return [k for k, v in params.items() if has_nested(v)]


def signal_propagation(
    model: nn.Module,
    variables: Any,
    x: Any,
    *,
    points: Any = "auto",
    train: bool = True,
    seed: int = 0,
) -> SignalPropagation:
    """Average squared channel mean, channel variance and residual-branch variance by depth.

    Args:
      model: any ``flax.linen`` module (a residual or a plain network).
      variables: ``{"params": ...}`` (plus ``"batch_stats"``), a ``TrainState`` or ``History``.
      x: an input batch (array or a dict with ``"x"``, and ``"lengths"`` for a model that
        takes them); a random N(0, 1) batch is the classic choice.
      points: ``"auto"`` (see the module docstring); ``("outputs", [paths])`` to measure
        the outputs of the given modules; ``("inputs", [paths])`` for their inputs.
      train: training mode (BatchNorm on batch statistics).
      seed: dropout seed.

    Returns:
      A :class:`SignalPropagation`.

    Raises:
      KeyError: for a module path that is not in the model.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import MLP
      >>> model = MLP(widths=(32,) * 9, num_outputs=2, residual=True, batch_norm=True)
      >>> v = model.init(jax.random.key(0), jnp.ones((1, 32)), train=False)
      >>> sp = signal_propagation(model, v, jax.random.normal(jax.random.key(1), (256, 32)))
      >>> len(sp.names), bool(sp.variance[-1] > sp.variance[0])
      (9, True)
    """
    variables = _as_variables(variables)
    extras = batch_extras(model, x)
    x, _ = batch_xy(x, need_y=False)
    layers = discover_layers(model, variables, x, train=train, extras=extras)
    if points == "auto":
        blocks = sorted(_blocks(variables["params"]), key=natural_key)
        order = {layer.name.split("/")[0]: i for i, layer in reversed(list(enumerate(layers)))}
        blocks = sorted(blocks, key=lambda b: order.get(b, math.inf))
        if blocks:
            mode, names = "outputs", blocks
        else:
            weighted = [layer.name for layer in layers if layer.is_weighted]
            mode, names = "inputs", weighted[1:]
    else:
        try:
            mode, names = points
        except (TypeError, ValueError):
            raise ValueError(
                f'points must be "auto", ("outputs", [paths]) or ("inputs", [paths]); '
                f"got {points!r}."
            ) from None
        if mode not in ("inputs", "outputs"):
            raise ValueError(f'points mode must be "inputs" or "outputs"; got {mode!r}.')
        names = list(names)
        known = {layer.name for layer in layers} | set(_blocks(variables["params"]))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise KeyError(f"Unknown module path(s) {unknown}; known: {sorted(known)}.")
    if not names:
        raise ValueError("No measurement points: the model has fewer than two weighted layers.")

    @jax.jit
    def run(
        v: Mapping[str, Any], xx: jax.Array, ee: Mapping[str, jax.Array]
    ) -> list[tuple[jax.Array, jax.Array, jax.Array]]:
        res = instrumented_pass(
            model, v, xx, None, None, names, train=train, rng=jax.random.key(seed), extras=ee
        )
        ins, outs = res["inputs"], res["acts"]
        stats = []
        prev = None
        for name in names:
            h = outs[name] if mode == "outputs" else ins[name]
            base = ins[name] if mode == "outputs" else prev
            ms, var = channel_stats(h)
            if base is not None and base.shape == h.shape:
                _, rvar = channel_stats(h - base)
            else:
                rvar = jnp.asarray(jnp.nan)
            stats.append((ms, var, rvar))
            prev = h
        return stats

    stats = jax.device_get(run(variables, x, extras))
    arr = np.asarray(stats, dtype=np.float64).reshape(len(names), 3)
    return SignalPropagation(list(names), arr[:, 0], arr[:, 1], arr[:, 2])
