"""Grid and random search over settings that change shapes: one :func:`jdl.fit` per trial.

:func:`jdl.train.sweep` trains K configurations in one vmapped program, which needs every
configuration to have the same shapes. Width, depth, batch size, the activation, a
rate that a model reads as a Python number (``flax.linen.Dropout``'s): each of these
changes the program, so :func:`search` builds one model per configuration and trains it with its own
:func:`jdl.fit`. It returns the same :class:`jdl.train.SweepResult` as ``sweep``, so
``table()``, ``plot()`` and ``best()`` read the same.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jdl._core.checks import is_int
from jdl.train.loop import fit
from jdl.train.results import SweepResult

__all__ = ["search"]

#: The keyword arguments of ``fit`` a search space (or ``build``) may set per trial.
_FIT_KEYS = frozenset(inspect.signature(fit).parameters) - {"model", "train"}


def _check_space(space: Any, trials: int | None) -> dict[str, Any]:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict name -> list of values; got {space!r}.")
    if trials is not None and (not is_int(trials) or trials < 1):
        raise ValueError(f"trials must be a positive integer or None (the grid); got {trials!r}.")
    for key, values in space.items():
        if callable(values):
            if trials is None:
                raise ValueError(
                    f"space[{key!r}] is a distribution (a function rng -> value); a grid needs "
                    "lists of values, so pass trials=N for a random search."
                )
        elif not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise ValueError(
                f"space[{key!r}] must be a non-empty list of values or a function rng -> value; "
                f"got {values!r}."
            )
    return dict(space)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _configs(space: dict[str, Any], trials: int | None, seed: int) -> list[dict[str, Any]]:
    """The grid (``trials=None``) or ``trials`` random configurations of ``space``.

    Random configurations are distinct when every value is a list (drawn without
    replacement from the grid); a key given as a function ``rng -> value`` is drawn
    afresh for every trial.
    """
    keys = list(space)
    if trials is None:
        grid = itertools.product(*space.values())
        return [{k: _plain(v) for k, v in zip(keys, c, strict=True)} for c in grid]
    rng = np.random.default_rng(seed)
    if all(not callable(v) for v in space.values()):
        sizes = [len(v) for v in space.values()]
        total = math.prod(sizes)
        if trials > total:
            raise ValueError(
                f"The space has only {total} distinct configurations, fewer than trials="
                f"{trials}; use trials=None for the whole grid."
            )
        configs = []
        for index in rng.choice(total, size=trials, replace=False):
            config, rest = {}, int(index)
            for key, size in zip(reversed(keys), reversed(sizes), strict=True):
                rest, i = divmod(rest, size)
                config[key] = _plain(space[key][i])
            configs.append({k: config[k] for k in keys})
        return configs
    return [
        {
            k: _plain(v(rng) if callable(v) else v[int(rng.integers(len(v)))])
            for k, v in space.items()
        }
        for _ in range(trials)
    ]


def _fit_arguments(
    config: dict[str, Any], built: Any, fit_kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """``(model, fit keyword arguments)`` for one trial, with clashes named."""
    model, extra = built if isinstance(built, tuple) else (built, {})
    if not isinstance(extra, Mapping):
        raise TypeError(
            f"build must return a model or (model, dict of fit arguments); got a {type(extra)}."
        )
    from_space = {k: v for k, v in config.items() if k in _FIT_KEYS}
    kwargs = dict(fit_kwargs)
    for source, values in (("the search space", from_space), ("build", extra)):
        unknown = sorted(set(values) - _FIT_KEYS)
        if unknown:
            raise ValueError(f"{source} sets {unknown}, which are not arguments of jdl.fit.")
        clash = sorted(set(values) & set(kwargs))
        if clash:
            raise ValueError(
                f"{clash} are set both by {source} and elsewhere (the search's keyword "
                "arguments or the space); set each in one place."
            )
        kwargs.update(values)
    return model, kwargs


def search(
    build: Callable[[dict[str, Any]], Any],
    train: Sequence[Any],
    *,
    space: Mapping[str, Sequence[Any] | Callable[[np.random.Generator], Any]],
    trials: int | None = None,
    sample_seed: int = 0,
    **fit_kwargs: Any,
) -> SweepResult:
    """Train one :func:`jdl.fit` per configuration of ``space``: a grid or random search.

    For settings that change shapes (widths, depth, batch size, ...), which
    :func:`jdl.train.sweep` cannot trace. ``build(config)`` receives each configuration
    (a dict with one value per key of ``space``) and returns the model, or a pair
    ``(model, fit_arguments)`` whose dict sets per-trial arguments of ``fit`` (say an
    optimiser built from the configuration). Keys of ``space`` that are arguments of
    ``fit`` (``batch_size``, ``l2``, ``seed``, ``epochs``, ...) are also passed to it
    directly.

    Args:
        build: ``config -> model`` or ``config -> (model, dict of fit arguments)``.
        train: the training data, as in :func:`jdl.fit`.
        space: ``name -> list of values`` (the grid, or what a random trial picks from)
            or, for a random search, ``name -> function rng -> value`` (a NumPy
            ``Generator``), e.g. ``lambda rng: 10 ** rng.uniform(-4, -2)``.
        trials: ``None`` trains the whole grid (the Cartesian product, in order);
            ``N`` trains N random configurations -- distinct ones, drawn without
            replacement, when every value is a list.
        sample_seed: the seed of the random draws (not of training: put ``seed`` in
            ``space`` or ``fit_kwargs`` for that).
        **fit_kwargs: the arguments of :func:`jdl.fit` shared by every trial
            (``batch_size``, ``loss``, ``optimizer``, ``epochs``, ``validation``, ...).

    Returns:
        A :class:`jdl.train.SweepResult`: the configurations, in the order trained, and
        each trial's :class:`jdl.train.History`.

    Raises:
        ValueError: for an empty or malformed space, a distribution in a grid, more
            trials than a finite space holds, or a ``fit`` argument set twice or unknown.

    Example:
        >>> import jdl
        >>> result = jdl.train.search(  # doctest: +SKIP
        ...     lambda c: jdl.nn.MLP(widths=(c["width"],) * c["depth"], num_outputs=10),
        ...     jdl.data.load("digits"), space={"width": [32, 128], "depth": [1, 2]},
        ...     batch_size=64, loss="cross_entropy", optimizer=("adam", 1e-3), epochs=5)
        >>> print(result.table(["loss", "accuracy"]))  # doctest: +SKIP
    """
    space = _check_space(space, trials)
    configs = _configs(space, trials, sample_seed)
    histories = []
    for config in configs:
        model, kwargs = _fit_arguments(config, build(dict(config)), fit_kwargs)
        history = fit(model, train, **kwargs)
        history.config = {**history.config, **config}
        histories.append(history)
    return SweepResult(configs=configs, histories=histories)
