"""Layer builders shared by the jdl models (private).

The one home of the BatchNorm settings (``bn_momentum``, ``bn_epsilon``, ``bn_axis_name``,
dtypes) every model forwards to :class:`flax.linen.BatchNorm`, of the bias-free conv and the
zero-bias classifier of the ResNets, of the image-batch checks of the image models, of the
stage loop both ResNets run, and of the dropout masks that do not depend on the device
(:func:`global_dropout_masks`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jdl.nn._checks import check_param_dim, rank_error, to_dtype
from jdl.nn.init import get_initializer

#: A partially applied module constructor (``functools.partial(nn.Conv, ...)``).
ModuleDef = Callable[..., nn.Module]


def pad(p: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric 2-D padding of ``p`` on each side, as PyTorch pads (never ``"SAME"``)."""
    return ((p, p), (p, p))


def uses_dropout(rate: Any) -> bool:
    """Whether a model builds its Dropout layers: a rate above 0, or any JAX array (a rate
    traced by ``jdl.train.sweep``, which may be 0 for some configurations and not others)."""
    return isinstance(rate, jax.Array) or rate > 0


#: The RNG collection that holds the dropout key *before* the device index is folded in,
#: next to ``"dropout"`` (folded, for other layers), under a mapped axis.
GLOBAL_DROPOUT_RNG = "dropout_global"

_MASK_AXIS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jdl_dropout_mask_axis", default=None
)


@contextlib.contextmanager
def global_dropout_masks(axis_name: str | None) -> Iterator[None]:
    """While tracing inside, jdl's :class:`Dropout` draws the masks of the global batch.

    Under ``pmap``/``shard_map`` over ``axis_name`` each device holds a contiguous slice of
    the global batch along the first axis. With this context set and the key of
    :data:`GLOBAL_DROPOUT_RNG` passed, every device draws the mask of the whole global
    batch from that (device-independent) key and keeps its own rows: the masks ``jax.jit``
    draws for the same global batch, bit for bit, at the price of drawing ``devices``
    times as many random bits (dropout sits on small activations in the jdl models).
    ``axis_name=None`` changes nothing.
    """
    token = _MASK_AXIS.set(axis_name)
    try:
        yield
    finally:
        _MASK_AXIS.reset(token)


class Dropout(nn.Module):
    """Flax's ``Dropout`` (same RNG stream, same mask, same output) with a traceable rate.

    ``flax.linen.Dropout`` tests ``rate == 0.0`` in Python, so a rate swept by
    :func:`jdl.train.sweep` cannot reach it; this layer reads a JAX-array rate inside the
    computation instead (a rate of 0 keeps every unit, 1 zeroes them all, with zero
    gradients). Named ``Dropout_i`` like Flax's, so its ``"dropout"`` keys are the same.
    Inside :func:`global_dropout_masks` (what ``jdl.train.train_step`` sets under an
    ``axis_name``) a device's mask is its slice of the global batch's mask.
    """

    rate: Any
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, inputs: jax.Array, deterministic: bool | None = None) -> jax.Array:
        """Zero each unit with probability ``rate`` and scale the rest by ``1 / (1 - rate)``."""
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        traced = isinstance(self.rate, jax.Array)
        if deterministic or (not traced and self.rate == 0.0):
            return inputs
        if not traced and self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep = 1.0 - self.rate
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = self._mask(keep, shape, _mask_sharding(inputs, shape))
        mask = jnp.broadcast_to(mask, inputs.shape)
        if traced:  # keep == 0 drops everything; divide by 1 there so gradients stay finite
            keep = jnp.where(keep > 0, keep, 1.0)
        return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))

    def _mask(self, keep: Any, shape: list[int], sharding: Any) -> jax.Array:
        """The keep mask of ``shape``: this device's rows of the global mask when asked."""
        axis = _MASK_AXIS.get()
        if axis is None or not shape or not self.has_rng(GLOBAL_DROPOUT_RNG):
            key = self.make_rng(self.rng_collection)
            return jax.random.bernoulli(key, p=keep, shape=shape, out_sharding=sharding)
        key = self.make_rng(GLOBAL_DROPOUT_RNG)
        if 0 in {d % len(shape) for d in self.broadcast_dims}:
            return jax.random.bernoulli(key, p=keep, shape=shape)  # one row for all examples
        local = shape[0]
        devices = jax.lax.axis_size(axis)
        full = jax.random.bernoulli(key, p=keep, shape=[local * devices, *shape[1:]])
        start = jax.lax.axis_index(axis) * local
        return jax.lax.dynamic_slice_in_dim(full, start, local, axis=0)


def _mask_sharding(inputs: jax.Array, shape: Sequence[int]) -> NamedSharding | None:
    """The sharding a mask of ``shape`` needs next to ``inputs`` on an explicit mesh.

    On a mesh with ``Explicit`` axes (``strategy="fsdp"``) ``lax.select`` needs the mask
    sharded as the inputs (the random bits, and so the mask, do not depend on it); a
    broadcast dimension is not sharded. ``None`` elsewhere.
    """
    sharding = jax.typeof(inputs).sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    spec = [*sharding.spec, *([None] * (len(shape) - len(sharding.spec)))]
    spec = (s if n == m else None for s, n, m in zip(spec, shape, inputs.shape, strict=True))
    return NamedSharding(mesh, PartitionSpec(*spec))


#: How BatchNorm may update its running variance (the models' ``bn_running_var``).
RUNNING_VAR = ("biased", "unbiased")


class BatchNorm(nn.BatchNorm):
    """Flax's ``BatchNorm`` with a choice of running-variance update.

    Normalisation always uses the batch's biased variance (as Flax and PyTorch both do).
    The running variance, which evaluation uses, is updated with the biased batch variance
    under ``running_var="biased"`` (Flax's convention) or with the unbiased one,
    ``n / (n - 1)`` times it, under ``"unbiased"`` (PyTorch's), where ``n`` counts the
    values each channel's statistics are taken over (across ``axis_name`` too). Same
    variables, same names, as ``flax.linen.BatchNorm``.
    """

    running_var: str = "biased"

    @nn.compact
    def __call__(
        self, x: jax.Array, use_running_average: bool | None = None, *, mask: Any = None
    ) -> jax.Array:
        """Normalise ``x`` (see ``flax.linen.BatchNorm``)."""
        if self.running_var not in RUNNING_VAR:
            raise ValueError(
                f"bn_running_var must be one of {RUNNING_VAR}; got {self.running_var!r}"
            )
        use_ra = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        y = super().__call__(x, use_running_average, mask=mask)
        if self.running_var == "biased" or use_ra or self.is_initializing():
            return y
        if mask is not None:
            raise NotImplementedError('bn_running_var="unbiased" does not support mask=.')
        axes = tuple(i for i in range(x.ndim) if i != x.ndim - 1)
        xf = jnp.asarray(x, jnp.float32)
        mean, mean2 = jnp.mean(xf, axes), jnp.mean(jnp.square(xf), axes)
        n = float(np.prod([x.shape[i] for i in axes]))
        if self.axis_name is not None:
            mean, mean2 = jax.lax.pmean((mean, mean2), self.axis_name)
            n = n * jax.lax.psum(1, self.axis_name)
        var = jnp.maximum(mean2 - jnp.square(mean), 0.0)
        ra_var = self.get_variable("batch_stats", "var")
        # Flax added (1 - m) * var; PyTorch adds (1 - m) * var * n / (n - 1).
        self.put_variable(
            "batch_stats", "var", ra_var + (1.0 - self.momentum) * var / jnp.maximum(n - 1, 1)
        )
        return y


def batch_norm_def(
    *,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    axis_name: str | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
    running_var: str = "biased",
) -> ModuleDef:
    """``partial(BatchNorm, ...)`` with jdl's settings; call it with ``use_running_average``.

    The defaults are PyTorch's: momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5; the running
    variance is Flax's biased one unless ``running_var="unbiased"`` (see :class:`BatchNorm`).
    """
    return partial(
        BatchNorm,
        momentum=momentum,
        epsilon=epsilon,
        axis_name=axis_name,
        dtype=dtype,
        param_dtype=param_dtype,
        running_var=running_var,
    )


def batch_norm_of(owner: Any) -> ModuleDef:
    """:func:`batch_norm_def` from a model's ``bn_*`` and dtype fields."""
    return batch_norm_def(
        momentum=owner.bn_momentum,
        epsilon=owner.bn_epsilon,
        axis_name=owner.bn_axis_name,
        dtype=owner.dtype,
        param_dtype=owner.param_dtype,
        running_var=owner.bn_running_var,
    )


def batch_norm(owner: Any, *, train: bool, name: str) -> nn.BatchNorm:
    """A BatchNorm configured from a model's ``bn_*``/dtype fields (call inside ``compact``).

    ``owner`` supplies ``bn_momentum``, ``bn_epsilon``, ``bn_axis_name``, ``dtype`` and
    ``param_dtype``; the layer uses batch statistics when ``train`` and running ones otherwise.
    """
    return batch_norm_of(owner)(use_running_average=not train, name=name)


def bias_free_conv(
    kernel_init: str | float | Callable[..., jax.Array] = "he_fan_out",
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> ModuleDef:
    """``partial(nn.Conv, use_bias=False, ...)``: the convs of the ResNets (a BatchNorm follows)."""
    return partial(
        nn.Conv,
        use_bias=False,
        kernel_init=get_initializer(kernel_init),
        dtype=dtype,
        param_dtype=param_dtype,
    )


def image_batch(module: nn.Module, model: str, x: jax.Array, first_conv: str) -> jax.Array:
    """Check and prepare an image batch: NHWC (a missing channel axis added), in ``dtype``.

    Raises ``ValueError`` for a wrong rank, an image without pixels (height or width 0) or
    channels, or (for an initialised ``module``) a channel count other than the input
    channels of its conv ``first_conv``.
    """
    x = jnp.asarray(x)
    shape = x.shape
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim != 4:
        raise rank_error(
            model, "(batch, height, width, channels) or (batch, height, width)", x.shape
        )
    if 0 in x.shape[1:3]:
        raise ValueError(
            f"{model} expects images of at least 1 x 1 pixels (batch, height, width, channels); "
            f"got shape {tuple(shape)}, with no pixels"
        )
    if x.shape[-1] == 0:
        raise ValueError(
            f"{model} expects images with at least 1 channel (batch, height, width, channels); "
            f"got shape {tuple(shape)}, with no channels"
        )
    check_param_dim(
        module,
        (first_conv, "kernel"),
        -2,
        x.shape[-1],
        lambda c: (
            f"{model} expects images with {c} channels (shape (batch, height, width, {c})), "
            f"got shape {tuple(shape)}"
        ),
    )
    return to_dtype(x, module.dtype)


def residual_stages(
    x: jax.Array,
    block_cls: type[nn.Module],
    stage_sizes: Sequence[int],
    width: int,
    *,
    train: bool,
    **block_fields: Any,
) -> jax.Array:
    """Stages ``layer1``, ``layer2``, ... of residual blocks (call inside ``compact``).

    Stage ``s`` (from 0) has ``stage_sizes[s]`` blocks ``layer{s+1}_{i}`` of ``width * 2^s``
    features; the first block of every stage but the first has stride 2. ``block_fields``
    (``conv``, ``norm``, ``shortcut``, ...) go to every block.
    """
    for s, num_blocks in enumerate(stage_sizes):
        for i in range(num_blocks):
            x = block_cls(
                features=width * 2**s,
                strides=2 if s > 0 and i == 0 else 1,
                name=f"layer{s + 1}_{i}",
                **block_fields,
            )(x, train=train)
    return x


def pooled_head(module: nn.Module, x: jax.Array) -> jax.Array:
    """Global average pooling, then the ResNets' ``fc``: ``fc_init`` kernel, zero bias."""
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(
        module.num_outputs,
        kernel_init=get_initializer(module.fc_init),
        bias_init=nn.initializers.zeros,
        dtype=module.dtype,
        param_dtype=module.param_dtype,
        name=type(module).head_name,
    )(x)
