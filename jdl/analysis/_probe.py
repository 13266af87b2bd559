"""One compiled pass computing every per-layer number the analyses report (private).

:func:`probe` runs :func:`jdl.analysis._layers.instrumented_pass` under ``jax.jit`` and
reduces it, still on device, to a few scalars and a histogram per layer; only those small
arrays come back to the host.

How a layer's *activation* is defined (documented in :mod:`jdl.analysis.flow`): layers are
grouped as "a weighted layer (Dense/Conv/...) followed by the normalisation layers called
right after it". The pre-activation of a group is the output of its last member; its
activation is ``activation(pre-activation)`` for every group but the last (the output
layer, analysed as it is). Every member of a group shares the group's activation. Where the
model sowed the tensor its activation is really applied to (``"<layer>:preactivation"``,
e.g. the residual stream of ``MLP(residual="pre")``), that tensor is the pre-activation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl._core.checks import is_int
from jdl._core.tree import own_leaves
from jdl.analysis._layers import (
    Layer,
    batch_extras,
    batch_xy,
    check_layer_names,
    discover_layers,
    get_loss,
    instrumented_pass,
    resolve_activation,
)
from jdl.train.optim import as_optimizer
from jdl.train.state import _as_variables

#: ``|tanh|`` above this counts as saturated (tanh' < 0.02).
TANH_SATURATION = 0.99
#: A sigmoid output below this or above ``1 -`` this counts as saturated (sigmoid' < 0.01).
SIGMOID_SATURATION = 0.01


@dataclasses.dataclass
class ProbeResult:
    """Host-side numbers of one probe (``numpy`` values), keyed by layer name."""

    layers: list[Layer]
    loss: float | None
    grad_norm: dict[str, float]
    param_norm: dict[str, float]
    update_norm: dict[str, float]
    act_grad_rms: dict[str, float]
    mean: dict[str, float]
    std: dict[str, float]
    dead: dict[str, float]
    saturated: dict[str, float]
    hist: dict[str, tuple[np.ndarray, np.ndarray]]
    activation: str | None
    group_of: dict[str, str]
    #: the chosen layers of the output group (analysed as they are: logits, not activations)
    output_layers: tuple[str, ...] = ()


def saturation(values: jax.Array, activation: str | None) -> jax.Array:
    """Fraction of entries of ``values`` (an activation) near the activation's limits."""
    if activation == "tanh":
        return jnp.mean(jnp.abs(values) > TANH_SATURATION)
    if activation in ("sigmoid", "hard_sigmoid"):
        return jnp.mean((values < SIGMOID_SATURATION) | (values > 1.0 - SIGMOID_SATURATION))
    return jnp.zeros(())


def histogram(values: jax.Array, bins: int) -> tuple[jax.Array, jax.Array]:
    """``(counts, edges)`` of the finite entries of ``values`` over their own range (jit-able)."""
    flat = values.reshape(-1)
    finite = jnp.isfinite(flat)
    lo = jnp.min(jnp.where(finite, flat, jnp.inf))
    hi = jnp.max(jnp.where(finite, flat, -jnp.inf))
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(hi > lo, hi, lo + 1e-6)
    index = jnp.clip(((flat - lo) / (hi - lo) * bins).astype(jnp.int32), 0, bins - 1)
    counts = jnp.bincount(
        jnp.where(finite, index, 0), weights=finite.astype(jnp.float32), length=bins
    )
    return counts, jnp.linspace(lo, hi, bins + 1)


def dead_fraction(values: jax.Array) -> jax.Array:
    """Fraction of units (last axis) whose value is exactly 0 for every example and position."""
    flat = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values[:, None]
    return jnp.mean(jnp.all(flat == 0, axis=0))


def _groups(layers: list[Layer], instrumented: set[str]) -> dict[str, str]:
    """Map each layer to the layer whose output is its group's pre-activation."""
    group_of: dict[str, str] = {}
    current: list[str] = []

    def close() -> None:
        if current:
            last = current[-1]
            for member in current:
                group_of[member] = last

    for layer in layers:
        if layer.is_norm and current:
            current.append(layer.name)
            continue
        close()
        current = [layer.name]
    close()
    return {k: v for k, v in group_of.items() if v in instrumented}


def probe(
    model: nn.Module,
    variables: Any,
    batch: Any,
    loss: str | Callable | None,
    *,
    layers: Any = None,
    activation: Any = "auto",
    train: bool = True,
    seed: int = 0,
    bins: int = 40,
    optimizer: Any = None,
    stats: bool = True,
) -> ProbeResult:
    """Compute per-layer gradient and activation numbers in one compiled pass."""
    if not is_int(bins) or bins < 1:
        raise ValueError(f"bins must be a positive number of histogram bins; got {bins!r}.")
    variables = _as_variables(variables)
    x, y = batch_xy(batch, need_y=loss is not None)
    extras = batch_extras(model, batch)
    loss_fn = get_loss(loss) if loss is not None else None
    all_layers = discover_layers(model, variables, x, train=train, extras=extras)
    chosen = check_layer_names(layers, all_layers)
    act_name, act_fn = resolve_activation(model, activation)
    names = [layer.name for layer in all_layers]
    tx = None if optimizer is None else as_optimizer(optimizer)
    rng = jax.random.key(seed)

    passed = jax.jit(
        lambda v, xx, yy, ee: instrumented_pass(
            model, v, xx, yy, loss_fn, names, train=train, rng=rng, extras=ee
        )
    )(variables, x, y, extras)
    acts, act_grads, param_grads = passed["acts"], passed["act_grads"], passed["param_grads"]
    groups = _groups(all_layers, set(acts))
    last_group = groups.get(all_layers[-1].name) if all_layers else None

    updates = None
    if tx is not None and param_grads is not None:
        updates = _first_update(tx, variables["params"], param_grads)
    sq_params = _sum_squares(variables["params"])
    sq_grads = None if param_grads is None else _sum_squares(param_grads)
    sq_updates = None if updates is None else _sum_squares(updates)

    raw: dict[str, Any] = {"loss": passed["loss"], "grad": {}, "pnorm": {}, "upd": {}}
    raw.update(agrad={}, stats={})
    cache: dict[str, Any] = {}
    for layer in chosen:
        name = layer.name
        raw["pnorm"][name] = own_leaves(sq_params, name)
        if sq_grads is not None:
            raw["grad"][name] = own_leaves(sq_grads, name)
        if sq_updates is not None:
            raw["upd"][name] = own_leaves(sq_updates, name)
        if name in act_grads:
            raw["agrad"][name] = _rms(act_grads[name])
        owner = groups.get(name)
        if owner is None or not stats:
            continue
        if owner not in cache:
            hidden = owner != last_group
            cache[owner] = _activation_stats(
                passed["preactivations"].get(owner, acts[owner]),
                act_fn if hidden else None,
                act_name if hidden else None,
                bins,
            )
        raw["stats"][name] = cache[owner]
    raw = jax.device_get(raw)

    def norms(d: Mapping) -> dict[str, float]:
        return {k: math.sqrt(sum(float(x) for x in v.values())) for k, v in d.items()}

    st = raw["stats"]
    return ProbeResult(
        layers=chosen,
        loss=None if raw["loss"] is None else float(raw["loss"]),
        grad_norm=norms(raw["grad"]),
        param_norm=norms(raw["pnorm"]),
        update_norm=norms(raw["upd"]),
        act_grad_rms={k: float(v) for k, v in raw["agrad"].items()},
        mean={k: float(v[0]) for k, v in st.items()},
        std={k: float(v[1]) for k, v in st.items()},
        dead={k: float(v[2]) for k, v in st.items()},
        saturated={k: float(v[3]) for k, v in st.items()},
        hist={k: (np.asarray(v[4]), np.asarray(v[5])) for k, v in st.items() if bins},
        activation=act_name,
        group_of=groups,
        output_layers=tuple(
            x.name for x in chosen if last_group is not None and groups.get(x.name) == last_group
        ),
    )


@jax.jit
def _sum_squares(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: jnp.sum(jnp.square(leaf.astype(jnp.float32))), tree)


@jax.jit
def _rms(values: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(values.astype(jnp.float32))))


def _first_update(tx: optax.GradientTransformation, params: Any, grads: Any) -> Any:
    @jax.jit
    def run(p: Any, g: Any) -> Any:
        updates, _ = tx.update(g, tx.init(p), p)
        return updates

    return run(params, grads)


@functools.partial(jax.jit, static_argnames=("fn", "kind", "bins"))
def _activation_stats(
    pre: jax.Array, fn: Callable | None, kind: str | None, bins: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    a = pre.astype(jnp.float32)
    if fn is not None:
        a = fn(a)
    counts, edges = histogram(a, bins) if bins else (jnp.zeros(0), jnp.zeros(0))
    return jnp.mean(a), jnp.std(a), dead_fraction(a), saturation(a, kind), counts, edges
