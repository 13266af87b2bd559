"""Framework-equivalence tests (``pytest -m interop``; run by ``nox -s interop``).

They need torch + torchvision and Keras 3, which the main test session does not install;
each test module skips itself when its framework is missing. Keras runs on the JAX
backend (``KERAS_BACKEND=jax``, set here before Keras is imported).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
