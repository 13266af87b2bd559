"""Hypothesis settings for the property-based tests (issue #14).

One profile, ``jdl``, loaded for every test here: ``derandomize=True`` (the examples are
a function of the test alone, so CI is reproducible and a failure reruns as it failed),
no example database (nothing written to ``.hypothesis/``), no deadline (the first
example of a shape pays for JAX's compilation) and a modest ``max_examples`` that keeps
the directory well under a minute on two cores. ``HYPOTHESIS_PROFILE=jdl-long`` runs ten
times as many examples, for a deeper search by hand.

The strategies draw shapes from few distinct values, so that JAX compiles few programs.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile(
    "jdl", derandomize=True, database=None, deadline=None, max_examples=25, print_blob=False
)
settings.register_profile("jdl-long", parent=settings.get_profile("jdl"), max_examples=250)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jdl"))
