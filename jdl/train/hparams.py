"""Hyper-parameters that :func:`jdl.train.sweep` traces: where each one goes, and the check.

A swept hyper-parameter keeps every shape the same, so K values of it can train side by
side in one vmapped program: its K values become one traced array, and each
configuration sees its own element. Where it goes is read from its name:

- a field of the model (``model.clone(name=value)``), e.g. a user model's
  ``temperature``;
- a keyword argument of the loss, e.g. ``label_smoothing`` of
  :func:`jdl.losses.cross_entropy`;
- otherwise an argument of the optimiser, e.g. ``momentum``, ``weight_decay``, ``b1``: a
  named optimiser gets it as a keyword (:func:`jdl.train.as_optimizer`), a function
  optimiser is called as ``optimizer(learning_rate, **hyper_parameters)``.

Code that needs a Python number -- an ``if rate > 0:``, a range check, a layer that is
only built when a rate is non-zero (``flax.linen.Dropout`` tests ``rate == 0.0``) --
cannot take a traced value. jdl's own code takes one wherever it is arithmetic: the
models' dropout rate (their Dropout layer reads it inside the computation), the named
optimisers' ``weight_decay``/``coupled_weight_decay`` and the loss's ``label_smoothing``
(range checks apply to Python numbers only). :meth:`Hyper.check` traces one
training step before the sweep starts and, if that fails, names the hyper-parameter and
points to :func:`jdl.train.search`, which trains one run per value and can set anything.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jdl.train.optim import as_optimizer
from jdl.train.state import create_state
from jdl.train.step import train_step

__all__: list[str] = []

#: Settings with their own ``sweep`` argument.
_OWN_ARGUMENT = {"learning_rate": "learning_rates", "seed": "seeds", "init_scale": "init_scales"}
#: Settings that change the shape or length of the run: one ``fit`` each, never traced.
_RUN_SETTINGS = ("batch_size", "epochs", "steps", "eval_batch_size", "log_every")


def _search_hint(key: str, values: Sequence[Any]) -> str:
    return (
        f"Train one run per value instead: jdl.train.search(build, train, space={{{key!r}: "
        f"{list(values)!r}}}, ...), where build(config) returns the model."
    )


def _model_fields(model: Any) -> set[str]:
    if not dataclasses.is_dataclass(model):
        return set()
    return {f.name for f in dataclasses.fields(model)} - {"parent", "name"}


def _loss_keywords(loss: Callable) -> set[str]:
    try:
        parameters = list(inspect.signature(loss).parameters.values())
    except (TypeError, ValueError):  # builtins and the like: no introspectable keywords
        return set()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name for p in parameters[2:] if p.kind in kinds} - {"where"}


def _check_values(key: str, values: Any) -> list[float | int]:
    if key in _OWN_ARGUMENT:
        raise ValueError(
            f"Sweep {key!r} with sweep's own argument `{_OWN_ARGUMENT[key]}=`, not `params`."
        )
    if key in _RUN_SETTINGS:
        raise ValueError(
            f"{key!r} changes the shape or length of the run, so it cannot be traced in one "
            f"vmapped program. " + _search_hint(key, values if _is_list(values) else [values])
        )
    if key in ("l1", "l2"):
        raise ValueError(
            f"{key!r} is one number for the whole sweep (train_step reads it as a Python "
            "number); sweep the optimiser's decay instead (params={'weight_decay': [...]}, "
            "with an optimiser that takes it). "
            + _search_hint(key, values if _is_list(values) else [values])
        )
    if not _is_list(values) or len(values) == 0:
        raise ValueError(f"params[{key!r}] must be a non-empty list of numbers; got {values!r}.")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise ValueError(
            f"sweep traces numbers only, and params[{key!r}] holds {bad[0]!r}: a setting like "
            "this (a width, a layer count, a flag, a name) changes the program. "
            + _search_hint(key, values)
        )
    return [v.item() if hasattr(v, "item") else v for v in values]  # ints stay ints


def _is_list(values: Any) -> bool:
    return isinstance(values, Sequence) and not isinstance(values, str)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """The swept hyper-parameters of one sweep, by destination.

    Build with :meth:`route`; :meth:`model`, :meth:`loss` and :meth:`optimizer` apply a
    dict of values (traced arrays inside the sweep, Python floats after it).

    Attributes:
        values: each swept name's values, in the order given.
        model_keys, loss_keys, optimizer_keys: which names go where.
    """

    values: dict[str, list[float | int]]
    model_keys: tuple[str, ...] = ()
    loss_keys: tuple[str, ...] = ()
    optimizer_keys: tuple[str, ...] = ()

    @classmethod
    def route(
        cls, params: Mapping[str, Sequence[float]] | None, model: Any, loss: Callable
    ) -> Hyper:
        """Check ``params`` and read where each name goes (see the module docstring).

        Raises:
            ValueError: for an empty or non-numeric list, a setting with its own argument
                or one that changes shapes (pointing to :func:`jdl.train.search`), or a
                name that is both a model field and a loss keyword.
        """
        if params is None:
            return cls({})
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict name -> list of values; got {params!r}.")
        values = {key: _check_values(key, v) for key, v in params.items()}
        fields, keywords = _model_fields(model), _loss_keywords(loss)
        both = sorted(set(values) & fields & keywords)
        if both:
            raise ValueError(
                f"{both[0]!r} is both a field of {type(model).__name__} and a keyword of the "
                "loss; rename one of them to sweep it."
            )
        return cls(
            values,
            tuple(k for k in values if k in fields),
            tuple(k for k in values if k in keywords),
            tuple(k for k in values if k not in fields and k not in keywords),
        )

    def __bool__(self) -> bool:
        return bool(self.values)

    def model(self, model: Any, h: Mapping[str, Any]) -> Any:
        """``model`` with its swept fields set to ``h``."""
        return model.clone(**{k: h[k] for k in self.model_keys}) if self.model_keys else model

    def loss(self, loss: Callable, h: Mapping[str, Any]) -> Callable:
        """``loss`` with its swept keywords bound to ``h``."""
        return (
            functools.partial(loss, **{k: h[k] for k in self.loss_keys}) if self.loss_keys else loss
        )

    def optimizer(
        self, optimizer: Any, *, swept_lr: bool
    ) -> Callable[[Any, Mapping[str, Any]], optax.GradientTransformation]:
        """``(learning_rate, h) -> transformation`` for one configuration.

        Without a swept learning rate (``swept_lr=False``) the optimiser is a ready
        transformation (when no optimiser hyper-parameter is swept) or a
        ``(name, learning_rate)`` pair, and the ``learning_rate`` argument is ignored.
        """
        keys = self.optimizer_keys
        arg = "learning_rates"
        if not swept_lr:
            if not keys:
                tx = as_optimizer(optimizer, learning_rate_arg=arg)
                return lambda lr, h: tx
            if (
                isinstance(optimizer, tuple)
                and len(optimizer) == 2
                and isinstance(optimizer[0], str)
            ):
                name, rate = optimizer
                return lambda lr, h: as_optimizer(name, rate, **{k: h[k] for k in keys})
            raise ValueError(
                f"To sweep the optimiser's {list(keys)}, pass `optimizer` as a name with "
                "`learning_rates` (e.g. 'sgd'), a (name, learning_rate) pair, or a function "
                f"(learning_rate, {', '.join(keys)}) -> optax transformation with "
                f"`learning_rates`; got {type(optimizer).__name__}."
            )
        if isinstance(optimizer, str) or not keys:
            return lambda lr, h: as_optimizer(
                optimizer, lr, learning_rate_arg=arg, **{k: h[k] for k in keys}
            )
        if not callable(optimizer) or isinstance(optimizer, optax.GradientTransformation):
            return lambda lr, h: as_optimizer(optimizer, lr, learning_rate_arg=arg)  # raises
        return lambda lr, h: as_optimizer(
            lambda rate: optimizer(rate, **{k: h[k] for k in keys}), lr, learning_rate_arg=arg
        )

    def check(
        self,
        model: Any,
        loss: Callable,
        factory: Callable[[Any, Mapping[str, Any]], optax.GradientTransformation],
        sample: dict[str, Any],
        learning_rate: float,
    ) -> None:
        """Trace one training step with the values traced; name the one that cannot be.

        A step that fails traced but runs with the same values as Python numbers is the
        sign of code that needs a number (an ``if``, a range check); that hyper-parameter
        is named. An error that the numbers raise too is the user's and is raised as is.

        Raises:
            ValueError: for a hyper-parameter the model, loss or optimiser cannot take as
                a traced value (it needs a Python number).
        """
        if not self:
            return
        first = {k: v[0] for k, v in self.values.items()}

        def step(traced: dict[str, jax.Array]) -> Any:
            h = {**first, **traced}
            state = create_state(self.model(model, h), factory(learning_rate, h), sample, 0)
            return train_step(state, sample, loss_fn=self.loss(loss, h))

        try:
            jax.eval_shape(step, {k: jnp.float32(v) for k, v in first.items()})
        except (TypeError, ValueError) as err:
            try:  # the same values as Python numbers: a genuine error is raised here
                jax.eval_shape(step, {})
            except TypeError as plain:  # e.g. "sgd() got an unexpected keyword argument 'b1'"
                named = [k for k in self.values if repr(k) in str(plain)]
                if named:
                    raise ValueError(self._explain(named[0], model, plain, False)) from plain
                raise
            for key in self.values:  # works with numbers, not traced: name the culprit
                try:
                    jax.eval_shape(step, {key: jnp.float32(first[key])})
                except (TypeError, ValueError) as one:
                    raise ValueError(self._explain(key, model, one, True)) from one
            raise err

    def _explain(self, key: str, model: Any, err: Exception, traced: bool) -> str:
        name = type(model).__name__
        where = (
            f"a field of {name}"
            if key in self.model_keys
            else "a keyword of the loss"
            if key in self.loss_keys
            else f"sent to the optimiser: it is neither a field of {name} nor a keyword of the loss"
        )
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not traced:
            return (
                f"sweep cannot pass {key!r} ({where}), which rejects it: {first}. Check the "
                f"name, or pass optimizer as a function (learning_rate, {key}) -> optax "
                "transformation."
            )
        return (
            f"sweep cannot trace {key!r} ({where}): the code that reads it needs a Python "
            f"number, not a traced value ({type(err).__name__}: {first}). "
            + _search_hint(key, self.values[key])
        )
