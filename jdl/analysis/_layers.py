"""Layer discovery and the instrumented forward pass shared by every analysis (private).

A *layer* is a module that owns parameters directly (``Dense_0``, ``layer1_0/conv1``,
``BatchNorm_3``, ...), named by its path of module names joined with ``/`` -- the keys of
the ``"params"`` collection. Layers are listed in **forward order**: the order in which
their ``__call__`` returns during a forward pass, recorded with
:func:`flax.linen.intercept_methods` while tracing (never the string order of the parameter
dict, where ``Dense_10`` sorts before ``Dense_2``).

The instrumented forward pass uses Flax's own machinery: for the chosen layers it
``sow``\\ s each layer's input and output into the ``"intermediates"`` collection and wraps
the output in :meth:`flax.linen.Module.perturb`, so that ``jax.grad`` with respect to the
``"perturbations"`` collection gives ``dLoss/dO_k`` for every layer output ``O_k``.
Modules called inside a lifted ``scan`` (the cells of a recurrent layer) cannot export
intermediates: they keep their parameter gradients but have no activation statistics.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl import losses as losses_lib
from jdl._core.tree import SEP, flatten, get_path
from jdl.data import ArraySource
from jdl.train.state import model_kwargs

PyTree = Any

_NUMBER = re.compile(r"(\d+)")

#: A module whose activation is not applied to a layer's own output (a pre-activation
#: residual stream ``z + Dense(act(z))``) sows the tensor the activation *is* applied to as
#: ``"<layer name>" + PREACTIVATION_SUFFIX`` in its ``"intermediates"`` collection; the
#: analyses then use it, instead of the layer's output, as that layer's pre-activation.
PREACTIVATION_SUFFIX = ":preactivation"


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``Dense_2`` before ``Dense_10``)."""
    return tuple(int(p) if p.isdigit() else p for p in _NUMBER.split(name))


@dataclasses.dataclass(frozen=True)
class Layer:
    """A parameter-owning module, as found by :func:`discover_layers`.

    Attributes:
      name: path of module names joined by ``/`` (e.g. ``"layer1_0/conv1"``).
      kind: the module's class name (``"Dense"``, ``"Conv"``, ``"BatchNorm"``, ...).
      param_names: names of the parameters the module owns directly.
    """

    name: str
    kind: str
    param_names: tuple[str, ...]

    @property
    def is_norm(self) -> bool:
        """Whether this is a normalisation layer (BatchNorm, LayerNorm, GroupNorm, ...)."""
        return "Norm" in self.kind

    @property
    def is_weighted(self) -> bool:
        """Whether the layer has a weight matrix/kernel (Dense, Conv, Embed...)."""
        return any(p in ("kernel", "embedding") for p in self.param_names)


def batch_xy(batch: Any, *, need_y: bool = True) -> tuple[jax.Array, jax.Array | None]:
    """Split a batch dict (or a :func:`jdl.data.from_arrays` source) into ``(x, y)``."""
    if isinstance(batch, ArraySource):
        batch = batch.arrays
    if not isinstance(batch, Mapping):
        if need_y:
            raise TypeError(f'batch must be a dict with "x" and "y"; got {type(batch).__name__}.')
        return jnp.asarray(batch), None
    missing = [k for k in (("x", "y") if need_y else ("x",)) if k not in batch]
    if missing:
        raise KeyError(
            f'batch must be a dict with "x" and "y"; missing {missing}, found {sorted(batch)}.'
        )
    y = batch.get("y")
    return jnp.asarray(batch["x"]), (None if y is None else jnp.asarray(y))


def batch_extras(model: nn.Module, batch: Any) -> dict[str, jax.Array]:
    """The model inputs a batch carries besides ``"x"`` (``"lengths"``), as arrays.

    The same rule as training (:func:`jdl.train.model_kwargs`): a batch's ``"lengths"``
    reach a model whose ``__call__`` takes them, and are refused for one that does not
    (it would read the padding). A bare input array carries none.
    """
    if isinstance(batch, ArraySource):
        batch = batch.arrays
    return {k: jnp.asarray(v) for k, v in model_kwargs(model, batch).items()}


def get_loss(loss: str | Callable) -> Callable:
    """A jdl loss by name, or the callable itself."""
    return losses_lib.get(loss)


def check_scalar_loss(value: jax.Array) -> jax.Array:
    if jnp.ndim(value) != 0:
        raise ValueError(
            "The loss must return a scalar (the mean over the batch); it returned shape "
            f"{jnp.shape(value)}. Reduce it, e.g. lambda p, y: jnp.mean(my_loss(p, y))."
        )
    return value


def takes_train(model: nn.Module) -> bool:
    """Whether ``model.__call__`` accepts a ``train`` keyword (every jdl model does)."""
    try:
        params = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return False
    return "train" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def apply_model(
    model: nn.Module,
    variables: Mapping[str, PyTree],
    x: jax.Array,
    *,
    train: bool,
    rng: jax.Array | None = None,
    mutable: Iterable[str] = (),
    extras: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, dict]:
    """``model.apply`` that handles ``train=``, BatchNorm statistics and dropout keys.

    In training mode the ``"batch_stats"`` collection is made mutable (the updated running
    averages are returned in the state and ignored by the analyses). ``extras`` are the
    batch's other model inputs (``{"lengths": ...}``, see :func:`batch_extras`).
    """
    mutable = list(mutable)
    kwargs = dict(extras or {})
    if takes_train(model):
        kwargs["train"] = train
    if train and "batch_stats" in variables:
        mutable.append("batch_stats")
    rngs = {"dropout": rng} if (train and rng is not None) else None
    out, state = model.apply(variables, x, rngs=rngs, mutable=mutable, **kwargs)
    return out, dict(state)


def _param_layers(params: Mapping) -> dict[str, tuple[str, ...]]:
    """Map each module path owning array parameters to the names of those parameters."""
    found: dict[str, tuple[str, ...]] = {}
    for path in flatten(params):
        module, _, name = path.rpartition(SEP)
        if module:  # parameters at the top level belong to no layer
            found[module] = (*found.get(module, ()), name)
    return found


class _Recorder:
    """An ``intercept_methods`` interceptor: records call order, sows and perturbs outputs."""

    def __init__(self, select: Callable[[str], bool] | None, instrument: bool) -> None:
        self.select = select
        self.instrument = instrument
        self.order: list[tuple[str, str]] = []

    def __call__(
        self,
        next_fun: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: nn.module.InterceptorContext,
    ) -> Any:
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        out = next_fun(*args, **kwargs)
        module = context.module
        if module.scope is None or not module.path:
            return out
        name = SEP.join(module.path)
        self.order.append((name, type(module).__name__))
        if self.instrument and self.select is not None and self.select(name):
            if isinstance(out, jax.Array) and args and isinstance(args[0], jax.Array):
                module.sow("intermediates", "in", args[0])
                module.sow("intermediates", "out", out)
                out = module.perturb("out", out)
        return out


def discover_layers(
    model: nn.Module,
    variables: Mapping[str, PyTree],
    x: jax.Array,
    *,
    train: bool = True,
    extras: Mapping[str, jax.Array] | None = None,
) -> list[Layer]:
    """The parameter-owning layers of ``model`` in forward (call) order.

    Args:
      model: any ``flax.linen`` module.
      variables: its variables (``{"params": ...}``).
      x: an input batch (only shapes are used; nothing is computed).
      train: the mode to trace in.
      extras: the batch's other model inputs (see :func:`batch_extras`).

    Returns:
      One :class:`Layer` per module that owns parameters, in the order their ``__call__``
      first returned. Layers never called (unusual) come last, in numeric name order.

    Raises:
      ValueError: if ``x`` does not fit the model.
    """
    recorder = _Recorder(None, instrument=False)

    def run(
        v: Mapping[str, PyTree], xx: jax.Array, ee: Mapping[str, jax.Array]
    ) -> tuple[Any, dict[str, PyTree]]:
        with nn.intercept_methods(recorder):
            return apply_model(model, v, xx, train=train, rng=jax.random.key(0), extras=ee)

    try:
        jax.eval_shape(run, variables, x, dict(extras or {}))
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise ValueError(
            f"The batch does not fit the model: {type(model).__name__} could not be applied "
            f"to inputs of shape {tuple(jnp.shape(x))} (dtype {jnp.result_type(x)}): {err}"
        ) from err
    except Exception as err:  # flax scope errors (wrong parameter shapes) and friends
        if "Error" in type(err).__name__:
            raise ValueError(
                f"The batch does not fit the model: {type(model).__name__} could not be "
                f"applied to inputs of shape {tuple(jnp.shape(x))}: {err}"
            ) from err
        raise
    owners = _param_layers(variables["params"])
    layers: list[Layer] = []
    seen: set[str] = set()
    for name, kind in recorder.order:
        if name in owners and name not in seen:
            seen.add(name)
            layers.append(Layer(name, kind, owners[name]))
    for name in sorted(set(owners) - seen, key=natural_key):
        layers.append(Layer(name, "?", owners[name]))
    return layers


def check_layer_names(requested: Iterable[str] | None, layers: list[Layer]) -> list[Layer]:
    """Restrict ``layers`` to the ``requested`` names, with a clear error for unknown ones."""
    if requested is None:
        return layers
    if isinstance(requested, str):
        requested = [requested]
    by_name = {layer.name: layer for layer in layers}
    unknown = [r for r in requested if r not in by_name]
    if unknown:
        raise KeyError(
            f"Unknown layer path(s) {unknown}; the model's layers, in forward order, are "
            f"{[layer.name for layer in layers]}."
        )
    wanted = set(requested)
    return [layer for layer in layers if layer.name in wanted]


def instrumented_pass(
    model: nn.Module,
    variables: Mapping[str, PyTree],
    x: jax.Array,
    y: jax.Array | None,
    loss: Callable | None,
    names: list[str],
    *,
    train: bool,
    rng: jax.Array,
    extras: Mapping[str, jax.Array] | None = None,
) -> dict[str, Any]:
    """One forward/backward pass that exposes every named layer's input, output and dLoss/dO.

    Traceable (call it inside ``jax.jit``); ``extras`` are the batch's other model inputs
    (see :func:`batch_extras`). Returns a dict with ``"outputs"``, ``"loss"``
    (or ``None`` without a loss), ``"param_grads"`` (a ``params``-shaped tree, or ``None``)
    and, per layer name that could be instrumented, ``"inputs"``, ``"acts"`` (outputs) and
    ``"act_grads"`` (``dLoss/dO``; without a loss, absent), plus ``"preactivations"`` for the
    layers whose parent module sowed ``"<layer>:preactivation"`` (see
    :data:`PREACTIVATION_SUFFIX`).
    """
    wanted = set(names)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k not in ("params", "perturbations")}

    def forward(p: PyTree, perts: PyTree | None) -> tuple[Any, dict[str, PyTree]]:
        recorder = _Recorder(wanted.__contains__, instrument=True)
        v = {**rest, "params": p}
        if perts is not None:
            v["perturbations"] = perts
        with nn.intercept_methods(recorder):
            out, state = apply_model(
                model,
                v,
                x,
                train=train,
                rng=rng,
                mutable=["intermediates", "perturbations"],
                extras=extras,
            )
        return out, state

    _, shapes = jax.eval_shape(forward, params, None)
    perts = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes.get("perturbations", {}))

    result: dict[str, Any] = {}
    if loss is None:
        out, state = forward(params, perts)
        result.update(outputs=out, loss=None, param_grads=None)
        act_grads = None
    else:

        def objective(p: PyTree, q: PyTree) -> tuple[jax.Array, tuple[Any, dict[str, PyTree]]]:
            out, state = forward(p, q)
            value = check_scalar_loss(loss(out, y))
            return value, (out, state)

        (value, (out, state)), (param_grads, act_grads) = jax.value_and_grad(
            objective, argnums=(0, 1), has_aux=True
        )(params, perts)
        result.update(outputs=out, loss=value, param_grads=param_grads)
    inter = state.get("intermediates", {})
    inputs, acts, grads, pre = {}, {}, {}, {}
    for name in names:
        node = get_path(inter, name)
        if node is None or "out" not in node:
            continue
        inputs[name] = node["in"][0]
        acts[name] = node["out"][0]
        parent, _, leaf = name.rpartition(SEP)
        owner = get_path(inter, parent) if parent else inter
        if isinstance(owner, Mapping) and f"{leaf}{PREACTIVATION_SUFFIX}" in owner:
            pre[name] = owner[f"{leaf}{PREACTIVATION_SUFFIX}"][0]
        if act_grads is not None:
            g = get_path(act_grads, name)
            if g is not None and "out" in g:
                grads[name] = g["out"]
    result.update(inputs=inputs, acts=acts, act_grads=grads, preactivations=pre)
    return result


def resolve_activation(model: nn.Module, activation: Any) -> tuple[str | None, Callable | None]:
    """``(name, fn)`` of the hidden activation to analyse; ``"auto"`` reads ``model.activation``.

    ``None`` means: analyse the layer outputs as they are.
    """
    from jdl.nn.activations import get_activation

    if isinstance(activation, str) and activation == "auto":
        activation = getattr(model, "activation", None)
    if activation is None:
        return None, None
    fn = get_activation(activation)
    name = activation if isinstance(activation, str) else getattr(fn, "__name__", "custom")
    return str(name).lower(), fn
