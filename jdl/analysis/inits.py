"""Initialisation experiments: the same network under several initialisers, side by side,
and the singular values of the layer Jacobians (Glorot & Bengio 2010).

Glorot & Bengio's argument: back-propagation multiplies the gradient by the Jacobian
``J_k = dh_k / dh_{k-1}`` of every layer. If the singular values of the ``J_k`` sit well
below 1 the gradient shrinks layer after layer on its way to the input; near 1 it keeps its
size. For a Dense layer followed by an activation ``f``, ``h_k = f(W_k^T h_{k-1} + b_k)`` and
``J_k = diag(f'(z_k)) W_k^T`` (per example). Their "standard" init U(-1/sqrt(n), 1/sqrt(n))
gives a mean singular value of about 0.5 in a 5-layer tanh net, their normalised init about
0.8.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl._core.tree import own_leaves
from jdl.analysis._layers import (
    batch_extras,
    batch_xy,
    check_layer_names,
    discover_layers,
    instrumented_pass,
    resolve_activation,
)
from jdl.analysis.flow import GradientFlow, gradient_flow
from jdl.train.state import _as_variables

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["InitComparison", "compare_inits", "jacobian_singular_values"]


def jacobian_singular_values(
    model: nn.Module,
    variables: Any,
    x: Any,
    *,
    activation: Any = "auto",
    layers: Sequence[str] | None = None,
    num_examples: int = 8,
) -> dict[str, np.ndarray]:
    """Singular values of each hidden Dense layer's Jacobian ``diag(f'(z)) W^T``.

    Valid for layers computing ``f(Dense(h))`` directly (a jdl ``MLP`` without BatchNorm or
    residual connections, or any such stack); ``f`` is ``model.activation`` or ``activation``.

    Args:
      model: the network.
      variables: its variables.
      x: an input batch (array or dict with ``"x"``, and ``"lengths"`` for a model that
        takes them).
      activation: hidden activation; ``"auto"`` reads ``model.activation``.
      layers: Dense layer paths (default: the hidden-to-hidden ones, i.e. every weighted
        layer but the first and the output layer).
      num_examples: number of examples (the first ones of ``x``) whose Jacobians are used.

    Returns:
      ``{layer path: singular values}`` with shape ``(num_examples, min(n_in, n_out))``;
      ``.mean()`` of an entry is the paper's "average singular value".

    Raises:
      ValueError: if no activation is known, or a layer is not a 2-D Dense kernel.
    """
    variables = _as_variables(variables)
    extras = {k: v[:num_examples] for k, v in batch_extras(model, x).items()}
    x, _ = batch_xy(x, need_y=False)
    x = x[:num_examples]
    _, fn = resolve_activation(model, activation)
    if fn is None:
        raise ValueError("jacobian_singular_values needs the hidden activation: pass activation=.")
    all_layers = discover_layers(model, variables, x, train=False, extras=extras)
    if layers is None:
        chosen = [layer for layer in all_layers if layer.is_weighted][1:-1]
    else:
        chosen = check_layer_names(list(layers), all_layers)
    names = [layer.name for layer in chosen]

    @jax.jit
    def run(v: Mapping[str, Any], xx: jax.Array, ee: Mapping[str, jax.Array]) -> dict:
        res = instrumented_pass(
            model, v, xx, None, None, names, train=False, rng=jax.random.key(0), extras=ee
        )
        out = {}
        for name in names:
            kernel = own_leaves(v["params"], name).get("kernel")
            if kernel is None or kernel.ndim != 2:
                found = "no kernel" if kernel is None else kernel.shape
                raise ValueError(f"{name}: expected a 2-D Dense kernel, got {found}.")
            z = res["acts"][name].reshape(xx.shape[0], -1)
            deriv = jax.vmap(jax.vmap(jax.grad(fn)))(z)
            jac = deriv[:, :, None] * kernel.T[None]  # (B, n_out, n_in)
            out[name] = jnp.linalg.svd(jac, compute_uv=False)
        return out

    return {k: np.asarray(v) for k, v in jax.device_get(run(variables, x, extras)).items()}


@dataclasses.dataclass
class InitComparison:
    """Result of :func:`compare_inits`: one :class:`GradientFlow` report per initialiser.

    Attributes:
      reports: ``{initialiser label: GradientFlow}``.
      singular_values: ``{label: {layer: mean Jacobian singular value}}`` (Dense/activation
        stacks only; empty otherwise).
    """

    reports: dict[str, GradientFlow]
    singular_values: dict[str, dict[str, float]]

    def table(self, field: str = "activation_std") -> str:
        """One row per layer, one column per initialiser, showing ``field`` of each report."""
        labels = list(self.reports)
        names = [r.name for r in next(iter(self.reports.values())).layers]
        rows = [f"{'layer':<14}" + "".join(f"{lab:>16}" for lab in labels)]
        for i, name in enumerate(names):
            vals = [getattr(self.reports[lab].layers[i], field) for lab in labels]
            rows.append(f"{name:<14}" + "".join(f"{v:>16.3g}" for v in vals))
        return "\n".join(rows)

    def __str__(self) -> str:
        parts = [
            "activation std",
            self.table("activation_std"),
            "",
            "back-propagated gradient rms(dL/dO)",
            self.table("activation_grad_rms"),
            "",
            "parameter-gradient norm",
            self.table("grad_norm"),
            "",
            "saturated fraction",
            self.table("saturated_fraction"),
        ]
        if self.singular_values:
            parts += ["", "mean Jacobian singular value"]
            for label, sv in self.singular_values.items():
                parts.append(f"{label:<14} " + " ".join(f"{v:.3f}" for v in sv.values()))
        return "\n".join(parts)

    __repr__ = __str__

    def plot(self, *, fig: Figure | None = None, title: str | None = None) -> Figure:
        """Activation std and back-propagated gradient by layer, one line per initialiser.

        Args:
          fig: draw into this figure (default: a new one, with constrained layout).
          title: the figure's title (``fig.suptitle``), laid out above the panels.

        Returns:
          The matplotlib ``Figure``.
        """
        from jdl.analysis.plots import _plot_init_comparison

        return _plot_init_comparison(self, fig=fig, title=title)


def compare_inits(
    model: nn.Module | Callable[[Any], nn.Module],
    inits: Sequence[Any] | Mapping[str, Any],
    batch: dict,
    loss: str | Callable = "cross_entropy",
    *,
    field: str = "kernel_init",
    seed: int = 0,
    singular_values: bool = True,
    num_examples: int = 8,
) -> InitComparison:
    """Initialise the same network with each initialiser and report side by side.

    Args:
      model: a module with a ``kernel_init`` field (every jdl model; the field is replaced
        with ``model.clone(**{field: init})``), or a function ``init -> module``.
      inits: initialisers (names such as ``"standard"``, ``"glorot"``, ``"he"``,
        ``"normal(0.01)"``, floats, callables), or ``{label: initialiser}``.
      batch: a dict with ``"x"`` and ``"y"`` (and ``"lengths"`` for a model that takes them).
      loss: a jdl loss name or function.
      field: the module field to replace.
      seed: initialisation seed (the same for every initialiser).
      singular_values: also compute mean Jacobian singular values
        (:func:`jacobian_singular_values`) where the model is a plain Dense stack.
      num_examples: examples used for the Jacobians.

    Returns:
      An :class:`InitComparison`; ``print`` it for the tables, ``.plot()`` for the figure.
    """
    items = dict(inits) if isinstance(inits, Mapping) else {str(i): i for i in inits}
    x, _ = batch_xy(batch)
    reports, svs = {}, {}
    for label, init in items.items():
        net = (
            model(init)
            if callable(model) and not isinstance(model, nn.Module)
            else (model.clone(**{field: init}))
        )
        variables = jax.jit(lambda k, net=net: net.init(k, x[:1], train=False))(
            jax.random.key(seed)
        )
        reports[label] = gradient_flow(net, variables, batch, loss)
        plain = not getattr(net, "batch_norm", False) and not getattr(net, "residual", False)
        if singular_values and plain and getattr(net, "activation", None) is not None:
            try:
                sv = jacobian_singular_values(net, variables, x, num_examples=num_examples)
            except ValueError:
                sv = {}
            svs[label] = {k: float(v.mean()) for k, v in sv.items()}
    return InitComparison(reports, svs)
