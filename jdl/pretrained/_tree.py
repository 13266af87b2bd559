"""Checking converted weights against a model, and what a non-strict load did.

Readers turn foreign weight files into flat dicts keyed by jdl paths such as
``"params/layer1_0/conv1/kernel"`` or ``"batch_stats/bn1/mean"`` (see
:func:`jdl._core.tree.flatten`); :func:`merge_into` checks such a dict against the variables a
model expects and builds the variables, reporting what it did in a :class:`LoadReport`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jdl._core.tree import compare_shapes, flatten, unflatten
from jdl.pretrained.errors import WeightMismatchError


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a non-strict load did.

    Attributes:
      loaded: model variables filled from the weights.
      missing: model variables the weights lack (left at their fresh initial values).
      unexpected: names in the weights that fit no model variable (ignored).
      mismatched: ``(variable, expected_shape, found_shape)`` (left at initial values).
    """

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def complete(self) -> bool:
        """True when every model variable was loaded and nothing was left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        return (
            f"LoadReport: {len(self.loaded)} loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched"
        )


def expected_shapes(model: Any, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Flat ``path -> ShapeDtypeStruct`` of the variables ``model.init`` would create.

    Uses :func:`jax.eval_shape`, so nothing is allocated, even for a VGG-16.
    """
    x = jax.ShapeDtypeStruct(tuple(input_shape), np.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return flatten(shapes)


def merge_into(
    model: Any,
    flat: Mapping[str, np.ndarray],
    *,
    input_shape: tuple[int, ...],
    strict: bool = True,
    seed: int = 0,
    unexpected: list[str] | None = None,
    source: str = "the weights",
    refuse: Callable[..., tuple[str, str] | None] | None = None,
) -> tuple[dict[str, Any], LoadReport]:
    """Check converted weights against a model and build its variables.

    Args:
      model: the ``flax.linen`` module the weights are for.
      flat: converted weights keyed by jdl paths (``"params/fc/kernel"``), in jdl layouts.
      input_shape: shape of an input batch (e.g. ``(1, 224, 224, 3)``), used to work out the
        model's variable shapes abstractly.
      strict: raise :class:`WeightMismatchError` listing every missing, unexpected and
        shape-mismatched name; with ``False`` load what fits and initialise the rest.
      seed: seed of the fresh initial values used for variables not loaded (non-strict).
      unexpected: source names the reader could not map at all (reported as unexpected).
      source: how to call the weights in messages.
      refuse: called as ``refuse(missing, unexpected, mismatched)`` when the weights do not
        fit exactly; it returns ``(summary, hint)`` when the differences show another
        architecture, and the load is then refused even with ``strict=False``
        (:class:`WeightMismatchError` with that summary and hint), or ``None`` to let a
        non-strict load go ahead.

    Returns:
      ``(variables, report)``: nested dicts of arrays (``params``, ``batch_stats``, ...),
      dtypes those of the model, and a :class:`LoadReport`.
    """
    wanted = expected_shapes(model, input_shape)
    missing, extra, mismatched = compare_shapes(
        {k: v.shape for k, v in wanted.items()}, {k: np.shape(v) for k, v in flat.items()}
    )
    extra = sorted(list(unexpected or ()) + extra)
    problems = bool(missing or extra or mismatched)
    why = refuse(missing, extra, mismatched) if refuse is not None and problems else None
    if problems and (strict or why):
        summary, hint = why or ("", "")
        shapes = {
            **{k: wanted[k].shape for k in missing},
            **{k: np.shape(flat[k]) for k in extra if k in flat},
        }
        raise WeightMismatchError(
            missing, extra, mismatched, source=source, summary=summary, hint=hint, shapes=shapes
        )
    loaded = sorted(k for k in wanted if k in flat and k not in {m[0] for m in mismatched})
    values: dict[str, Any] = {}
    needed = [k for k in wanted if k not in set(loaded)]
    if needed:
        # Return only what is needed, so XLA compiles just those initialisers (much faster).
        def fresh_values(x):
            fresh = flatten(model.init(jax.random.key(seed), x, train=False))
            return {k: fresh[k] for k in needed}

        values.update(jax.jit(fresh_values)(np.zeros(tuple(input_shape), np.float32)))
    for k in loaded:
        values[k] = jax.numpy.asarray(np.asarray(flat[k]), dtype=wanted[k].dtype)
    _warn_non_finite(values, loaded, source)
    report = LoadReport(loaded=loaded, missing=missing, unexpected=extra, mismatched=mismatched)
    return unflatten(values), report


def _warn_non_finite(values: Mapping[str, Any], loaded: list[str], source: str) -> None:
    """Warn, naming them, about loaded weights holding NaN or infinite values."""
    bad = {}
    for k in loaded:
        v = np.asarray(values[k])
        if np.issubdtype(v.dtype, np.inexact) and not np.all(np.isfinite(v)):
            bad[k] = int(v.size - np.count_nonzero(np.isfinite(v)))
    if bad:
        listed = ", ".join(f"{k} ({n} of {np.size(values[k])})" for k, n in list(bad.items())[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        warnings.warn(
            f"{source} hold NaN or infinite values in {len(bad)} weight(s): {listed}{more}. "
            "The model's outputs will be NaN; the file is probably corrupt or was saved "
            "after training diverged.",
            RuntimeWarning,
            stacklevel=3,
        )


# -- checking weights against a model whose input shape is unknown --------------------------

#: At most this many guessed inputs are tried (each costs one or two ``jax.eval_shape``).
_MAX_GUESSES = 4


@dataclasses.dataclass(frozen=True)
class GuessedCheck:
    """The outcome of :func:`check_without_input_shape`.

    Attributes:
      input_shape: the guessed input batch shape the model's variables were worked out for.
      missing: model variables the weights lack.
      unexpected: names in the weights that are no variable of the model.
      mismatched: ``(variable, model_shape, weights_shape)`` for shapes that do not depend
        on the input's size, yet differ.
      unchecked: variables whose shape depends on the input's spatial size or length (a
        flattening head), whose shapes could not be checked.
      shapes: the shape of each missing (the model's) and unexpected (the weights') path.
    """

    input_shape: tuple[int, ...]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    unchecked: list[str]
    shapes: dict[str, tuple[int, ...]]

    @property
    def fits(self) -> bool:
        """True when the weights have every variable of the model, and nothing else."""
        return not (self.missing or self.unexpected or self.mismatched)


def _guessed_inputs(flat: Mapping[str, Any]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Pairs of input shapes to try, differing only in spatial size (or sequence length).

    Each kernel of the weights suggests an input: a ``(..., in, out)`` kernel with ``k``
    spatial dimensions takes ``k``-D inputs of ``in`` channels (``k = 0``: a vector of
    ``in`` features, or a sequence of them). The smallest channel counts come first: the
    first layer, which sees the input, usually has the fewest.
    """
    pairs = sorted(
        {
            (int(np.shape(v)[-2]), len(np.shape(v)) - 2)
            for k, v in flat.items()
            if k.endswith("/kernel") and len(np.shape(v)) >= 2
        }
    )
    guesses = []
    for channels, rank in pairs:
        if rank == 0:
            guesses += [((1, channels), (1, channels)), ((1, 4, channels), (1, 8, channels))]
        else:
            guesses.append(((1, *[32] * rank, channels), (1, *[64] * rank, channels)))
    return guesses[:_MAX_GUESSES]


def check_without_input_shape(model: Any, flat: Mapping[str, Any]) -> GuessedCheck | None:
    """Check weights against ``model`` when nobody knows the input shape it takes.

    A model's variable shapes depend on its input (flax infers each layer's input size), so
    the input batch shape is guessed from the weights' kernels (see :func:`_guessed_inputs`),
    and the model's variables are worked out abstractly (:func:`expected_shapes`) for it and
    for an input of another spatial size: shapes that change with it (a flattening head)
    are left unchecked, every other path and shape is compared.

    Returns:
      The first guess under which the weights fit, else the guess with the fewest
      differences; ``None`` when ``model`` accepts none of the guessed inputs.
    """
    found = {k: tuple(np.shape(v)) for k, v in flat.items()}
    best: GuessedCheck | None = None
    for shape, other in _guessed_inputs(flat):
        try:
            wanted = {k: tuple(v.shape) for k, v in expected_shapes(model, shape).items()}
            alt = wanted
            if other != shape:
                alt = {k: tuple(v.shape) for k, v in expected_shapes(model, other).items()}
        except Exception:  # noqa: BLE001 (a model refusing this guess: rank, size, ...)
            continue
        varying = sorted(k for k in wanted if k in alt and alt[k] != wanted[k])
        missing, unexpected, mismatched = compare_shapes(wanted, found)
        shapes = {**{k: wanted[k] for k in missing}, **{k: found[k] for k in unexpected}}
        check = GuessedCheck(
            input_shape=shape,
            missing=missing,
            unexpected=unexpected,
            mismatched=[m for m in mismatched if m[0] not in varying],
            unchecked=varying,
            shapes=shapes,
        )
        if check.fits:
            return check
        count = lambda c: len(c.missing) + len(c.unexpected) + len(c.mismatched)  # noqa: E731
        if best is None or count(check) < count(best):
            best = check
    return best
