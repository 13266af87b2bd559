"""Head surgery and freezing: reuse a trained network's features for a new task.

- :func:`replace_head` drops the classifier (the layer named by the model's ``head_name``)
  and puts a freshly initialised one with ``num_outputs`` outputs in its place; every other
  variable is kept as it is.
- :func:`freeze` wraps an optax optimiser with :func:`optax.multi_transform`: the named
  parameters get the optimiser's updates, all others :func:`optax.set_to_zero` (and no
  optimiser state is allocated for them).
- :class:`FreezeBatchNorm` runs the frozen parts' BatchNorm layers on their running
  statistics even in training mode, so those statistics stay as pretrained (what Keras does
  for a BatchNorm layer with ``trainable = False``).
- :func:`finetune_state` starts a :class:`~jdl.train.TrainState` from given variables.

Names (``trainable=``) are ``"/"``-separated paths in the variables tree without the
collection: ``"fc"`` (a module and everything in it), ``"layer4_1/conv2"``, or glob patterns
such as ``"layer4*"`` or ``"*/bias"``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl._core.tree import SEP, leaf_paths, path_str
from jdl.train.state import TrainState, state_from_variables

__all__ = [
    "FreezeBatchNorm",
    "finetune_state",
    "freeze",
    "is_trainable",
    "replace_head",
    "trainable_mask",
]


def _patterns(trainable: str | Sequence[str]) -> tuple[str, ...]:
    patterns = (trainable,) if isinstance(trainable, str) else tuple(trainable)
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"trainable names must be strings, got {p!r}")
    return patterns


def is_trainable(path: str, trainable: str | Sequence[str]) -> bool:
    """Whether a ``"a/b/c"`` path is named by ``trainable`` (itself, a parent, or a glob).

    Example:
      >>> is_trainable("fc/kernel", ["fc"]), is_trainable("layer4_1/bn2", ["layer4*"])
      (True, True)
      >>> is_trainable("layer3_0/conv1/kernel", ["layer4*"])
      False
    """
    parts = path.split(SEP)
    prefixes = [SEP.join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for pat in _patterns(trainable) for p in prefixes)


def trainable_mask(params: Any, trainable: str | Sequence[str]) -> Any:
    """A tree like ``params`` with ``"train"`` / ``"freeze"`` labels (see :func:`freeze`)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, _: "train" if is_trainable(path_str(p), trainable) else "freeze", params
    )


def freeze(
    optimizer: optax.GradientTransformation, trainable: str | Sequence[str]
) -> optax.GradientTransformation:
    """An optimiser that trains only the parameters named by ``trainable``.

    ``optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)``
    where each parameter's label comes from its path (see :func:`is_trainable`). Frozen
    parameters get exactly zero updates, also under weight decay or momentum.

    BatchNorm running statistics are not parameters: to keep those of the frozen parts
    as well, train ``FreezeBatchNorm(model, trainable=...)`` instead of ``model``.

    Args:
      optimizer: the optax optimiser for the trainable part.
      trainable: names or glob patterns (``"fc"``, ``"head"``, ``"layer4*"``).

    Returns:
      An ``optax.GradientTransformation``.

    Raises:
      ValueError: (at ``init``) if ``trainable`` names no parameter at all.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> params = {"Conv_0": {"kernel": jnp.ones(2)}, "head": {"kernel": jnp.ones(2)}}
      >>> tx = freeze(optax.sgd(0.1), ["head"])
      >>> updates, _ = tx.update(params, tx.init(params), params)
      >>> updates["Conv_0"]["kernel"].tolist()
      [0.0, 0.0]
      >>> [float(f"{u:.3f}") for u in updates["head"]["kernel"]]
      [-0.1, -0.1]
    """
    patterns = _patterns(trainable)

    def labels(params: Any) -> Any:
        mask = trainable_mask(params, patterns)
        if "train" not in jax.tree_util.tree_leaves(mask):
            names = sorted({path.split(SEP)[0] for path in leaf_paths(params)})
            raise ValueError(
                f"freeze: {list(patterns)} names no parameter; top-level modules are {names}"
            )
        return mask

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)


class FreezeBatchNorm(nn.Module):
    """Run a model with the BatchNorm layers outside ``trainable`` on their running averages.

    Variables are shared with ``model`` (:func:`flax.linen.share_scope`): the wrapper adds
    no nesting, so the same variables dict works for both. In training mode, BatchNorm
    layers whose path is *not* named by ``trainable`` normalise with their running mean and
    variance and do not update them; the others behave as usual.

    Attributes:
      model: the wrapped model (``__call__(x, *, train)``).
      trainable: names or glob patterns of the parts that keep training (see
        :func:`is_trainable`); ``()`` freezes every BatchNorm.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl import nn as jnn
      >>> model = jnn.CNN(features=(4,), num_outputs=2, batch_norm=True, ndim=1)
      >>> v = model.init(jax.random.key(0), jnp.ones((2, 8)), train=False)
      >>> frozen = FreezeBatchNorm(model, trainable=("head",))
      >>> _, new = frozen.apply(v, jnp.ones((2, 8)), train=True, mutable=["batch_stats"])
      >>> bool(jnp.all(new["batch_stats"]["BatchNorm_0"]["mean"] == 0))
      True
    """

    model: nn.Module
    trainable: tuple[str, ...] = ()

    def setup(self) -> None:
        nn.share_scope(self, self.model)

    @property
    def num_outputs(self) -> int:
        """The wrapped model's ``num_outputs``."""
        return self.model.num_outputs

    @property
    def head_name(self) -> str:
        """The wrapped model's ``head_name``."""
        return type(self.model).head_name

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Apply the wrapped model; frozen BatchNorm layers use running statistics."""
        trainable = _patterns(self.trainable)

        def interceptor(next_fun, args, kwargs, context):
            module = context.module
            if (
                train
                and isinstance(module, nn.BatchNorm)
                and not module.use_running_average
                and context.method_name == "__call__"
                and not is_trainable(SEP.join(module.path), trainable)
            ):
                # The same layer, unbound, in inference mode, on this layer's variables.
                inference = module.clone(parent=None, use_running_average=True)
                return inference.apply(
                    {k: module.variables[k] for k in ("params", "batch_stats")}, *args, **kwargs
                )
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            return self.model(x, train=train)


def _guess_input_shape(model: Any, params: Mapping[str, Any]) -> tuple[int, ...] | None:
    from jdl.nn import MLP, ResNet

    if isinstance(model, ResNet):
        return (1, 64, 64, int(np.shape(params["conv1"]["kernel"])[-2]))
    if isinstance(model, MLP) and "Dense_0" in params:
        return (1, int(np.shape(params["Dense_0"]["kernel"])[0]))
    return None


def replace_head(
    model: Any,
    variables: Mapping[str, Any],
    num_outputs: int,
    *,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Swap a model's classifier for a new one with ``num_outputs`` outputs.

    The head is the layer named by the model's ``head_name`` (``"fc"`` for ResNets,
    ``"head"`` for the other jdl models). Its new weights are what
    ``model.clone(num_outputs=num_outputs).init(key, x)`` gives (the model's own head
    initialiser; only the head is computed); every other variable is kept unchanged.

    Args:
      model: a jdl model (any module with ``num_outputs`` and ``head_name``).
      variables: its trained variables.
      num_outputs: outputs of the new head (e.g. the new task's classes).
      input_shape: an input batch shape, e.g. ``(1, 40)``; needed for models whose head
        size depends on the input (CNN, VGG), inferred for ResNets and MLPs.
      seed: seed of the new head's initial weights.

    Returns:
      ``(new_model, new_variables)``.

    Raises:
      TypeError: the model has no ``num_outputs``/``head_name``.
      ValueError: the head is not in ``variables``, or ``input_shape`` is needed.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl import nn
      >>> model = nn.MLP(widths=(16,), num_outputs=5)
      >>> v = model.init(jax.random.key(0), jnp.ones((1, 40)), train=False)
      >>> new_model, new_v = replace_head(model, v, 3)
      >>> new_v["params"]["head"]["kernel"].shape, new_model.num_outputs
      ((16, 3), 3)
    """
    head = getattr(type(model), "head_name", None)
    if head is None or not hasattr(model, "num_outputs"):
        raise TypeError(
            f"replace_head needs a model with num_outputs and a head_name class attribute (every "
            f"jdl model has them); got {type(model).__name__}"
        )
    params = variables["params"]
    if head not in params:
        raise ValueError(
            f"{type(model).__name__}'s head {head!r} is not in the variables; top-level "
            f"parameters are {sorted(params)}"
        )
    shape = input_shape or _guess_input_shape(model, params)
    if shape is None:
        raise ValueError(
            f"replace_head needs input_shape= for {type(model).__name__} (its head size depends "
            "on the input size), e.g. input_shape=(1, 40)"
        )
    new_model = model.clone(num_outputs=int(num_outputs))
    x = jnp.zeros(tuple(shape), jnp.float32)
    # Only the head is returned, so XLA drops the rest of the initialisation.
    new_head = jax.jit(
        lambda k: new_model.init({"params": k, "dropout": k}, x, train=False)["params"][head]
    )(jax.random.key(seed))
    old_in = np.shape(params[head]["kernel"])[0]
    new_in = np.shape(new_head["kernel"])[0]
    if old_in != new_in:
        raise ValueError(
            f"the head of the model built on inputs {tuple(shape)} takes {new_in} features, "
            f"but the trained head takes {old_in}: pass the input_shape the model was trained on"
        )
    new_variables = {k: v for k, v in variables.items()}
    new_variables["params"] = {**params, head: new_head}
    return new_model, new_variables


def finetune_state(
    model: Any,
    variables: Mapping[str, Any],
    optimizer: optax.GradientTransformation,
    *,
    seed: int = 0,
) -> TrainState:
    """A :class:`~jdl.train.TrainState` that starts from given (pretrained) variables.

    :func:`jdl.train.state_from_variables` with the arguments in this module's order. Use
    it with :func:`jdl.train.train_step` / :func:`jdl.train.parallelize` to fine-tune.
    The arrays are copied, so ``variables`` stays valid after steps that donate the state.

    Args:
      model: the model (e.g. from :func:`replace_head`, possibly in :class:`FreezeBatchNorm`).
      variables: ``{"params": ..., "batch_stats": ...}``.
      optimizer: e.g. ``freeze(optax.adam(1e-3), ["head"])``.
      seed: seed of the dropout key.
    """
    given = {"params": dict(variables["params"])}
    given["batch_stats"] = dict(variables.get("batch_stats", {}))
    return state_from_variables(model, optimizer, given, seed)
