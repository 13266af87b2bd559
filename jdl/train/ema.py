"""An exponential moving average (EMA) of the parameters, updated at every step.

An EMA is only the standard one if it is updated after every optimiser step, and jdl's
callbacks see the state only when metrics are fetched (every ``log_every`` steps): an
average of those snapshots, even with ``decay ** k``, is a different (and
``log_every``-dependent) number. So the average is kept where every step passes, in the
optimiser: :func:`ema_params` is a tiny optax transformation that changes no update and
only records ``ema <- decay * ema + (1 - decay) * new_params`` in its state. It runs on
the device inside the compiled step, is donated and sharded with the rest of the state,
and is saved by checkpoints. The :class:`EMA` callback adds it to a run's optimiser and
hands the average back at the end.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jdl.train.callback_base import Callback, Run

__all__ = ["EMA", "EmaParamsState", "averaged_params", "ema_params"]


class EmaParamsState(NamedTuple):
    """The state of :func:`ema_params`: the moving average, shaped like the parameters."""

    params: Any


def ema_params(decay: float = 0.999) -> optax.GradientTransformation:
    """An optax transformation that keeps an EMA of the parameters, changing nothing.

    Chain it *after* the optimiser (``optax.chain(tx, ema_params(0.999))``): its
    ``update(updates, state, params)`` sees the final updates, forms the new parameters
    ``params + updates`` and sets ``ema = decay * ema + (1 - decay) * new_params``; the
    updates pass through unchanged, so training is exactly as without it. The average
    starts at the initial parameters (no bias correction, as in Keras, TensorFlow and
    timm). :func:`averaged_params` reads it from an optimiser state.

    Args:
        decay: the weight of the old average, ``0 <= decay < 1``; the average spans
            about ``1 / (1 - decay)`` steps.

    Returns:
        An ``optax.GradientTransformation`` whose state is an :class:`EmaParamsState`.

    Raises:
        ValueError: for ``decay`` outside ``[0, 1)``, or an update without ``params``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> tx = optax.chain(optax.sgd(1.0), ema_params(0.5))
        >>> params = {"w": jnp.array(0.0)}
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": jnp.array(-2.0)}, state, params)  # w -> 2
        >>> float(averaged_params(state)["w"])  # 0.5 * 0 + 0.5 * 2
        1.0
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1); got {decay}.")

    def init(params: Any) -> EmaParamsState:
        # A copy: the average must not share buffers with the (donated) parameters.
        return EmaParamsState(jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params))

    def update(
        updates: Any, state: EmaParamsState, params: Any = None
    ) -> tuple[Any, EmaParamsState]:
        if params is None:
            raise ValueError(
                "ema_params needs the parameters: call update(updates, state, params)."
            )
        new = optax.apply_updates(params, updates)
        ema = jax.tree_util.tree_map(
            lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), state.params, new
        )
        return updates, EmaParamsState(ema)

    return optax.GradientTransformation(init, update)


def averaged_params(opt_state: optax.OptState) -> Any | None:
    """The moving average kept by :func:`ema_params` in an optimiser state, if any.

    Searches chains, named-tuple wrappers and dicts; returns the first one found.
    """
    if isinstance(opt_state, EmaParamsState):
        return opt_state.params
    children: Any = ()
    if isinstance(opt_state, tuple | list):
        children = opt_state
    elif isinstance(opt_state, dict):
        children = opt_state.values()
    for child in children:
        found = averaged_params(child)
        if found is not None:
            return found
    return None


class EMA(Callback):
    """Keep an exponential moving average of the parameters during :func:`jdl.fit`.

    Updated at every optimiser step, on the device, by an :func:`ema_params`
    transformation the callback chains after the run's optimiser when training begins
    (the updates are unchanged, so the training itself is the same as without it). At the
    end :attr:`variables` holds the averaged variables; ``swap_on_end=True`` also puts
    them into the final state, so ``history.variables`` (and ``jdl.evaluate`` of
    ``history.state``) use the average.

    Only the parameters are averaged: ``batch_stats`` (BatchNorm running statistics) are
    those of the final state; they were accumulated with the raw weights, so for a model
    with BatchNorm re-estimate them for the averaged weights when it matters (a pass
    over some training batches in training mode).

    With ``fit(..., resume=True)``, build the optimiser with the average already in it,
    ``optimizer=ema.wrap(tx)``, so the restored state (which holds the average) fits it;
    the callback then uses the average it finds rather than adding a second one. The
    same goes for an optimiser you pass to your own loop.

    Args:
        decay: the weight of the old average per step (see :func:`ema_params`).
        swap_on_end: put the average into the final state at the end of training.

    Attributes:
        variables: after training, ``{"params": <average>, ...}`` with the final state's
            other collections (``batch_stats``); ``None`` before.

    Raises:
        ValueError: for ``decay`` outside ``[0, 1)``.

    Example:
        >>> from jdl.train.callbacks import EMA
        >>> ema = EMA(decay=0.99)
        >>> # history = jdl.fit(..., callbacks=[ema]); jdl.evaluate(model, ema.variables, test)
    """

    def __init__(self, decay: float = 0.999, swap_on_end: bool = False):
        self.transform = ema_params(decay)  # checks decay
        self.decay = decay
        self.swap_on_end = swap_on_end
        self.variables: dict[str, Any] | None = None

    def wrap(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """``tx`` with this callback's average chained after it (for resuming runs)."""
        return optax.chain(tx, self.transform)

    def on_train_begin(self, run: Run) -> None:
        self.variables = None
        state = run.state
        if averaged_params(state.opt_state) is not None:
            return
        run.set_state(
            state.replace(
                tx=self.wrap(state.tx),
                opt_state=(state.opt_state, self.transform.init(state.params)),
            )
        )

    def on_train_end(self, run: Run) -> None:
        state = run.state
        average = jax.tree_util.tree_map(lambda p: p.copy(), averaged_params(state.opt_state))
        self.variables = {**state.variables, "params": average}
        if self.swap_on_end:
            params = jax.tree_util.tree_map(lambda p: p.copy(), average)
            run.set_state(state.replace(params=params))
