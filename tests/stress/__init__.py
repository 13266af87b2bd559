"""The stress suite (``nox -s stress``; opt-in ``JDL_STRESS=1``): a package, so that its
conftest does not take the name ``conftest`` that tests/train's modules import from."""
