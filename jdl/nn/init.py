"""Weight initialisers by name.

Every initialiser returned here has the signature of :mod:`jax.nn.initializers`:
``init(key, shape, dtype=jnp.float32) -> Array``. For kernels, fans follow the Flax layouts:
a Dense kernel is ``(n_in, n_out)`` and a convolution kernel ``(*window, c_in, c_out)``, whose
fan-in is ``prod(window) * c_in`` (the receptive field counts).

Names (case-insensitive):

- ``"glorot"`` (aliases ``"xavier"``, ``"glorot_uniform"``, ``"xavier_uniform"``): Glorot &
  Bengio's (2010) "normalised" init, U(-a, a) with a = sqrt(6 / (n_in + n_out)).
- ``"glorot_normal"`` (``"xavier_normal"``): variance 2 / (n_in + n_out).
- ``"he"`` (``"he_normal"``, ``"kaiming"``, ``"kaiming_normal"``): He et al. (2015), variance
  2 / n_in.
- ``"he_uniform"`` (``"kaiming_uniform"``): U(-a, a) with a = sqrt(6 / n_in).
- ``"he_fan_out"``: untruncated N(0, 2 / n_out), torchvision's init for ResNet and VGG convs.
- ``"lecun"`` (``"lecun_normal"``): variance 1 / n_in, Flax's default kernel init.
- ``"lecun_uniform"``: U(-a, a) with a = sqrt(3 / n_in).
- ``"standard"``: Glorot & Bengio's (2010) "standard" init U(-1/sqrt(n_in), 1/sqrt(n_in)),
  also PyTorch's default ``nn.Linear``/``nn.Conv*`` weight init.
- ``"orthogonal"``: a (semi-)orthogonal matrix (Saxe et al. 2014).
- ``"zeros"``, ``"ones"``: constants.
- ``"normal(s)"``, e.g. ``"normal(0.01)"``, or a float ``s``: N(0, s^2).
- ``"uniform(s)"``, e.g. ``"uniform(0.05)"``: U(-s, s).

The ``*_normal``/``"he"``/``"lecun"`` variants follow JAX (and Flax) and sample a normal
truncated at two standard deviations, rescaled so that the variance is exactly the one stated;
``"he_fan_out"`` and ``normal(s)`` are untruncated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

_Initializer = Callable[..., jax.Array]

__all__ = ["INITIALIZER_NAMES", "get_initializer", "normal", "standard", "uniform"]


def normal(stddev: float) -> _Initializer:
    """Initialiser drawing from N(0, stddev^2), independent of the fans.

    Args:
      stddev: standard deviation, ``>= 0``.

    Returns:
      An initialiser ``init(key, shape, dtype=jnp.float32)``.

    Raises:
      ValueError: if ``stddev`` is negative or not finite.

    Example:
      >>> import jax
      >>> w = normal(0.01)(jax.random.key(0), (3, 4))
      >>> w.shape
      (3, 4)
    """
    stddev = _check_scale("normal", stddev)
    return jinit.normal(stddev)


def uniform(scale: float) -> _Initializer:
    """Initialiser drawing from the symmetric interval U(-scale, scale).

    Unlike :func:`jax.nn.initializers.uniform`, which samples ``[0, scale)``, the interval here
    is centred on zero, as weights should be.

    Args:
      scale: half-width of the interval, ``>= 0``.

    Returns:
      An initialiser ``init(key, shape, dtype=jnp.float32)``.

    Raises:
      ValueError: if ``scale`` is negative or not finite.

    Example:
      >>> import jax
      >>> w = uniform(0.5)(jax.random.key(0), (100,))
      >>> bool((abs(w) <= 0.5).all())
      True
    """
    scale = _check_scale("uniform", scale)

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return init


def standard() -> _Initializer:
    """Glorot & Bengio's (2010) "standard" initialiser U(-1/sqrt(n_in), 1/sqrt(n_in)).

    Its variance is ``1 / (3 n_in)``, a third of LeCun's: in deep tanh networks the
    back-propagated gradients shrink layer after layer (the paper's Figure 7). It is also
    PyTorch's default weight init for ``nn.Linear`` and ``nn.Conv*``.

    Returns:
      An initialiser ``init(key, shape, dtype=jnp.float32)``; ``n_in`` is the fan-in of
      ``shape`` (``shape[-2]`` times the receptive field for convolution kernels).
    """
    return jinit.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


_FACTORIES: dict[str, Callable[[], _Initializer]] = {
    "glorot": jinit.glorot_uniform,
    "xavier": jinit.glorot_uniform,
    "glorot_uniform": jinit.glorot_uniform,
    "xavier_uniform": jinit.glorot_uniform,
    "glorot_normal": jinit.glorot_normal,
    "xavier_normal": jinit.glorot_normal,
    "he": jinit.he_normal,
    "he_normal": jinit.he_normal,
    "kaiming": jinit.he_normal,
    "kaiming_normal": jinit.he_normal,
    "he_uniform": jinit.he_uniform,
    "kaiming_uniform": jinit.he_uniform,
    "he_fan_out": lambda: jinit.variance_scaling(2.0, "fan_out", "normal"),
    "lecun": jinit.lecun_normal,
    "lecun_normal": jinit.lecun_normal,
    "lecun_uniform": jinit.lecun_uniform,
    "standard": standard,
    "orthogonal": jinit.orthogonal,
    "zeros": lambda: jinit.zeros,
    "ones": lambda: jinit.ones,
}

#: Names accepted by :func:`get_initializer` (besides ``"normal(s)"``/``"uniform(s)"``).
INITIALIZER_NAMES: tuple[str, ...] = tuple(_FACTORIES)

_PARAMETRIC = re.compile(r"^(normal|uniform)\(\s*([^()]*?)\s*\)$")


def get_initializer(init: str | float | _Initializer) -> _Initializer:
    """Return the initialiser named by ``init``.

    Args:
      init: one of :data:`INITIALIZER_NAMES` (case-insensitive, see the module docstring);
        ``"normal(s)"`` or ``"uniform(s)"`` with a number ``s``; a float ``s``, meaning
        ``normal(s)``; or any callable ``init(key, shape, dtype)``, returned unchanged.

    Returns:
      An initialiser ``init(key, shape, dtype=jnp.float32) -> Array``.

    Raises:
      ValueError: for an unknown name (the message lists the valid ones) or a negative scale.
      TypeError: for anything that is neither a string, a number nor a callable.

    Example:
      >>> import jax
      >>> w = get_initializer("glorot")(jax.random.key(0), (300, 100))
      >>> bool(abs(w).max() <= (6 / 400) ** 0.5)
      True
      >>> get_initializer("normal(0.01)")(jax.random.key(0), (2, 2)).shape
      (2, 2)
    """
    if isinstance(init, bool):
        raise TypeError(f"initializer must be a name, a stddev or a callable, got bool {init!r}")
    if isinstance(init, int | float):
        return normal(float(init))
    if isinstance(init, str):
        key = init.strip().lower()
        if key in _FACTORIES:
            return _FACTORIES[key]()
        match = _PARAMETRIC.match(key)
        if match:
            kind, arg = match.groups()
            try:
                value = float(arg)
            except ValueError:
                raise ValueError(
                    f"initializer {init!r}: expected a number inside {kind}(...), got {arg!r}"
                ) from None
            return normal(value) if kind == "normal" else uniform(value)
        raise ValueError(
            f"unknown initializer {init!r}; valid names are {', '.join(INITIALIZER_NAMES)}, "
            "'normal(<stddev>)', 'uniform(<scale>)', a float stddev, or a callable "
            "init(key, shape, dtype)"
        )
    if callable(init):
        return init
    raise TypeError(
        "initializer must be a name, a float stddev or a callable init(key, shape, dtype), "
        f"got {type(init).__name__} {init!r}"
    )


def _check_scale(kind: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{kind}(...) needs a finite scale >= 0, got {value!r}")
    return value
