"""Per-layer gradients: parameter-gradient norms, update/parameter ratios, dLoss/dO_k.

Backpropagation multiplies local derivatives, layer after layer, from the loss down to the
input: ``dL/dW_1 = dL/dO_L x dO_L/dO_{L-1} x ... x dO_2/dO_1 x dO_1/dW_1``. The functions
here make each factor of that chain visible. :func:`gradient_norms` gives the norm of every
layer's parameter gradient; :func:`layer_gradients` adds the parameter norm, the size of the
update a given optimiser would make (relative to the parameters), and the root-mean-square
of the gradient with respect to the layer's *output* ``dL/dO_k``, obtained with Flax's
``perturb`` (a zero added to each layer output, differentiated like a parameter).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn

from jdl.analysis._probe import probe

__all__ = ["LayerGradient", "gradient_norms", "layer_gradients"]


@dataclasses.dataclass(frozen=True)
class LayerGradient:
    """Gradient numbers of one layer.

    Attributes:
      name: layer path (e.g. ``"Dense_3"``).
      grad_norm: L2 norm of the gradient of the loss w.r.t. the layer's parameters.
      param_norm: L2 norm of the layer's parameters.
      update_norm: norm of the update the optimiser would apply now (``nan`` without one).
      update_ratio: ``update_norm / param_norm``; around 1e-3 per step is the classic
        healthy value (Karpathy's rule of thumb); ``nan`` without an optimiser.
      activation_grad_rms: root-mean-square of ``dLoss/dO`` for the layer output ``O``
        (``nan`` where the output cannot be instrumented, e.g. inside a recurrent scan).
    """

    name: str
    grad_norm: float
    param_norm: float
    update_norm: float
    update_ratio: float
    activation_grad_rms: float


def gradient_norms(
    model: nn.Module,
    variables: Any,
    batch: dict,
    loss: str | Callable,
    *,
    train: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Norm of each layer's parameter gradient, in forward (input-to-output) order.

    Args:
      model: any ``flax.linen`` module (every jdl model, or your own).
      variables: ``{"params": ...}`` (plus ``"batch_stats"``), a ``TrainState`` or a
        ``History``.
      batch: a dict with ``"x"`` and ``"y"`` (and ``"lengths"`` for a model that takes them).
      loss: a jdl loss name (``"cross_entropy"``, ``"mse"``...) or ``(outputs, y) -> scalar``.
      train: run the model in training mode (BatchNorm on batch statistics, whose updated
        running averages are discarded; dropout with a key from ``seed``).
      seed: dropout seed.

    Returns:
      ``{layer path: gradient norm}`` ordered input to output, e.g.
      ``{"Dense_0": ..., "Dense_1": ..., "head": ...}``; keys are the paths of the modules
      that own parameters (``"layer1_0/conv1"`` for nested ones).

    Raises:
      ValueError: if the batch does not fit the model or the loss is not a scalar.
      KeyError: if the batch lacks ``"x"`` or ``"y"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import MLP
      >>> model = MLP(widths=(8, 8), num_outputs=3)
      >>> v = model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
      >>> batch = {"x": jnp.ones((5, 4)), "y": jnp.array([0, 1, 2, 0, 1])}
      >>> list(gradient_norms(model, v, batch, "cross_entropy"))
      ['Dense_0', 'Dense_1', 'head']
    """
    result = probe(
        model, variables, batch, loss, train=train, seed=seed, activation=None, stats=False
    )
    return {layer.name: result.grad_norm[layer.name] for layer in result.layers}


def layer_gradients(
    model: nn.Module,
    variables: Any,
    batch: dict,
    loss: str | Callable,
    *,
    optimizer: Any = None,
    layers: Any = None,
    train: bool = True,
    seed: int = 0,
) -> dict[str, LayerGradient]:
    """Parameter gradient, parameter norm, update/parameter ratio and ``dLoss/dO`` per layer.

    Args:
      model, variables, batch, loss, train, seed: as in :func:`gradient_norms`.
      optimizer: an ``optax.GradientTransformation`` (e.g. ``jdl.train.optimizer("adam",
        1e-3)``) or a ``(name, learning_rate)`` pair; the update is that of the optimiser's
        first step from a fresh state. ``None`` leaves the update fields ``nan``.
      layers: restrict to these layer paths (all by default).

    Returns:
      ``{layer path: LayerGradient}`` in forward order.

    Raises:
      KeyError: for a layer path the model does not have (the message lists the valid ones).
    """
    result = probe(
        model,
        variables,
        batch,
        loss,
        layers=layers,
        activation=None,
        train=train,
        seed=seed,
        optimizer=optimizer,
        stats=False,
    )
    out = {}
    for layer in result.layers:
        name = layer.name
        pn = result.param_norm[name]
        un = result.update_norm.get(name, math.nan)
        out[name] = LayerGradient(
            name=name,
            grad_norm=result.grad_norm[name],
            param_norm=pn,
            update_norm=un,
            update_ratio=un / pn if pn > 0 else math.nan,
            activation_grad_rms=result.act_grad_rms.get(name, math.nan),
        )
    return out
