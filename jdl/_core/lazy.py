"""Packages whose public names are imported on first use (a module ``__getattr__``, PEP 562).

``import jdl`` and ``import jdl.data`` run no heavy import: each public name is imported from
its module when it is first looked up (``jdl.data.load`` imports TensorFlow Datasets then,
``jdl.data.as_source`` does not). :func:`lazy_exports` builds the ``__getattr__`` and
``__dir__`` of such a package from a table of where each name lives.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package that imports names on first use.

    Args:
        package: The package's ``__name__``, e.g. ``"jdl.data"``.
        where: For each public name, the module that defines it, e.g.
            ``{"load": "jdl.data.sources"}``. A name whose module is ``f"{package}.{name}"``
            is that submodule itself (``{"train": "jdl.train"}`` in ``jdl``), so a name defined
            in the submodule of the same name (``jdl.nn.summary.summary``) cannot be lazy.
        public: The package's ``__all__``: every name of ``where``, and those the package
            defines itself (``__version__``), each once. Checked, so that a name added to
            ``__all__`` and not to ``where`` (or the reverse) fails at import.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's top level. ``__getattr__``
        imports the name's module, stores the value in the package (so later lookups are
        plain attribute reads) and returns it; for any other name it raises
        ``AttributeError`` naming the names it has.

    Raises:
        ValueError: If a module in ``where`` is outside ``package``; if ``public`` lacks a
            name of ``where``, repeats one, or has one neither defined nor in ``where``; or
            if a name of ``where`` is also a submodule's and is not that submodule.
    """
    outside = sorted(m for m in where.values() if not m.startswith(f"{package}."))
    if outside:
        raise ValueError(f"modules of {package!r} must be inside it, got {outside}")
    defined = vars(sys.modules[package])
    unlisted = sorted(set(where) - set(public))
    unknown = sorted(n for n in public if n not in where and n not in defined)
    if unlisted or unknown or len(set(public)) != len(public):
        raise ValueError(
            f"{package}.__all__ must list each name once, and each either defined or in the "
            f"table of lazy names: not in __all__: {unlisted}; neither defined nor in the "
            f"table: {unknown}; __all__ has {len(public) - len(set(public))} duplicate(s)"
        )
    # Importing submodule ``m`` sets the package's attribute ``m`` to it: a lazy name that is
    # also a submodule's (``summary`` of ``jdl.nn.summary``) would then never come here.
    clashes = sorted(
        n
        for n, m in where.items()
        if m != f"{package}.{n}"
        and "__path__" in defined  # a package: it has submodules
        and importlib.util.find_spec(f"{package}.{n}") is not None
    )
    if clashes:
        raise ValueError(
            f"{package}: {clashes} name submodules too, so they cannot be imported on first "
            "use (importing the submodule would replace them); import them at the top"
        )
    names = sorted(where)
    expected = list(public)

    def __getattr__(name: str) -> Any:
        try:
            module_name = where[name]
        except KeyError:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}; expected one of {expected}"
            ) from None
        module = importlib.import_module(module_name)
        value = module if module_name == f"{package}.{name}" else getattr(module, name)
        setattr(sys.modules[package], name, value)  # once: later lookups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
