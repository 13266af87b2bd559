"""autodoc additions for jdl's API reference.

* Constants re-exported by a package (``jdl.data.BUNDLED`` is defined in
  ``jdl.data.prepare``) keep the doc comment (``#:`` or a string after the assignment)
  written where they are defined: autodoc only reads doc comments of the module being
  documented, so without this a public constant would silently drop out of
  ``automodule:: jdl.data``.
* The aliases on the top-level page (``jdl.fit``) get no viewcode source link, so the
  back-links of the source pages point at the canonical entries (``jdl.train.fit``).
* ``.. jdl-submodules:: jdl.data`` lists the public modules of a package (name and first
  paragraph of their docstring) and makes each a ``:mod:`` target, so docstrings may point
  at the module that implements something.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective


def defining_doc_comment(package: str, name: str) -> list[str] | None:
    """The ``#:`` doc comment of ``package.name`` where the value is actually defined.

    Looks in ``package`` itself, then in every loaded sub-module of it that holds the
    very same object under the same name.
    """
    module = sys.modules.get(package)
    if module is None or not hasattr(module, name):
        return None
    value = getattr(module, name)
    candidates = [package] + sorted(
        m for m in sys.modules if m.startswith(package + ".") and sys.modules[m] is not None
    )
    for modname in candidates:
        sub = sys.modules[modname]
        if getattr(sub, name, _MISSING) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:
            continue
        if ("", name) in docs:
            return list(docs[("", name)])
    return None


_MISSING = object()


def inject_reexported_doc_comments(app) -> None:
    """Copy the doc comments of re-exported constants into their package's analyzer.

    autodoc documents a module-level constant only if the analyzer of the module being
    documented has a doc comment for it; for ``jdl.data.BUNDLED`` that comment lives in
    ``jdl.data.prepare``. This puts it where autodoc looks (the analyzer is cached for the
    whole build), for every name in every jdl package's ``__all__``.
    """
    import jdl  # noqa: F401  (imports every sub-package)

    for modname in sorted(m for m in sys.modules if m == "jdl" or m.startswith("jdl.")):
        module = sys.modules[modname]
        names = getattr(module, "__all__", None)
        if module is None or not names:
            continue
        try:
            analyzer = ModuleAnalyzer.for_module(modname)
            analyzer.analyze()
        except Exception:
            continue
        for name in names:
            value = getattr(module, name, _MISSING)
            if value is _MISSING or ("", name) in analyzer.attr_docs:
                continue
            if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
                continue
            doc = defining_doc_comment(modname, name)
            if doc:
                analyzer.attr_docs[("", name)] = doc
                analyzer.tagorder.setdefault(name, len(analyzer.tagorder))


class SubmodulesDirective(SphinxDirective):
    """``.. jdl-submodules:: jdl.data`` — the package's public modules, as ``:mod:`` targets."""

    required_arguments = 1
    has_content = False

    def run(self):
        package_name = self.arguments[0]
        package = importlib.import_module(package_name)
        rst = []
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            full = f"{package_name}.{info.name}"
            try:
                module = importlib.import_module(full)
            except Exception as err:  # surfaced as a build warning, so -W fails
                raise self.error(f"cannot import {full}: {err}") from err
            doc = inspect.getdoc(module) or ""
            summary = doc.split("\n\n")[0].replace("\n", " ").strip() or "(no description)"
            domain = self.env.get_domain("py")
            if full in domain.modules:  # documented above on this page
                rst += [f":mod:`{full}`", f"   {summary}", ""]
                continue
            if full in domain.objects:  # a public name shadows the module (jdl.train.sweep)
                rst += [f"``{full}`` (module)", f"   {summary}", ""]
                continue
            rst += [
                f".. py:module:: {full}",
                "   :no-index-entry:",
                "",
                f"``{full}``",
                f"   {summary}",
                "",
            ]
        rst += [f".. py:currentmodule:: {package_name}", ""]
        node = nodes.container()
        self.state.nested_parse(StringList(rst, source=self.get_source_info()[0]), 0, node)
        return node.children


def viewcode_follow_imported(app, modname, attribute):
    """Give the top-level aliases (``jdl.fit``) no source link of their own.

    viewcode keys its back-links by a source file's first referrer: if ``jdl.fit`` (on the
    ``jdl`` page) claimed ``jdl/train/loop.py``, the "[docs]" links of that file would
    point at ``#jdl.default_metrics`` and the like, which do not exist. The canonical
    entries (``jdl.train.fit``) keep their source links.
    """
    if modname == "jdl":
        return "jdl"
    return _partial_reexport(modname, attribute)


def _partial_reexport(modname, attribute):
    """``modname`` itself when it re-exports only part of the module defining ``attribute``.

    viewcode gives a source file one anchor prefix, its first referrer's: if ``jdl.train``
    (which re-exports ``Checkpoint`` from ``jdl.train.callbacks``) claimed
    ``callbacks.py``, its back-links would point at ``#jdl.train.EarlyStopping``, which is
    documented as ``jdl.train.callbacks.EarlyStopping``. A package claims a module's source
    only when it re-exports every public name of it.
    """
    try:
        obj = importlib.import_module(modname)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        home = getattr(obj, "__module__", None)
        if not home or home == modname or not home.startswith("jdl."):
            return None
        public = set(getattr(importlib.import_module(home), "__all__", ()))
        exported = set(getattr(importlib.import_module(modname), "__all__", ()))
    except Exception:  # viewcode's own lookup decides
        return None
    return modname if not public <= exported else None


def setup(app):
    app.connect("viewcode-follow-imported", viewcode_follow_imported)
    app.connect("builder-inited", inject_reexported_doc_comments)
    app.add_directive("jdl-submodules", SubmodulesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
