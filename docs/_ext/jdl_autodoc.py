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
* ``.. jdl-api:: jdl.nn`` opens a package's page with one summary table per group of
  names (``docs/api/groups.py``: name, one-line summary, link to the entry), then documents
  the entries group by group, each group a section. The summary is the first sentence of
  the docstring, or of the ``#:`` comment of a constant.
* Signatures name types as the documentation does: ``jax.Array`` rather than
  ``jax.jaxlib._jax.Array``, ``jdl.train.TrainState`` rather than
  ``jdl.train.state.TrainState``; dataclass and Flax-module signatures show the defaults
  as written in the source (``dtype: Any = jnp.float32``, not ``<class '...float32'>``)
  and leave out Flax's internal ``parent`` argument, so every signature parses and its
  type names render short and linked.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import signature as sphinx_signature
from sphinx.util.inspect import stringify_signature


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
    import jdl

    for name in jdl.__all__:  # jdl imports its sub-packages on first use: import all
        getattr(jdl, name)

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


# -- grouped API pages ---------------------------------------------------------------------

GROUPS_FILE = Path(__file__).resolve().parents[1] / "api" / "groups.py"


def _groups_module():
    spec = importlib.util.spec_from_file_location("jdl_api_groups", GROUPS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_groups() -> dict[str, list[tuple[str, list[str]]]]:
    """``GROUPS`` of ``docs/api/groups.py``: package -> ``[(title, [names]), ...]``."""
    return _groups_module().GROUPS


def load_summaries() -> dict[str, str]:
    """``SUMMARIES`` of ``docs/api/groups.py``: summaries of names without a docstring."""
    return getattr(_groups_module(), "SUMMARIES", {})


def summary_line(modname: str, name: str) -> str:
    """The one-line summary of ``modname.name``: the first sentence of its documentation.

    That is the docstring for modules, classes and functions, and the doc comment (``#:``)
    where a constant is defined; ``SUMMARIES`` of ``docs/api/groups.py`` overrides both.
    """
    overrides = load_summaries()
    if f"{modname}.{name}" in overrides:
        return overrides[f"{modname}.{name}"]
    value = getattr(importlib.import_module(modname), name)
    if _autodoc_directive(value) == "autodata":
        doc = "\n".join(defining_doc_comment(modname, name) or [])
    else:
        doc = inspect.getdoc(value) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    if not inspect.ismodule(value):
        paragraph = _qualify_roles(paragraph, getattr(value, "__module__", None) or modname)
    # Up to the end of the first sentence (a period followed by a capital letter or markup,
    # "e.g.", "i.e." and "et al." excepted).
    match = re.search(r"(?<!e\.g\.)(?<!i\.e\.)(?<! al\.)(?<=[.!?])\s+(?=[A-Z(`])", paragraph)
    return paragraph[: match.start()] if match else paragraph


def _qualify_roles(text: str, home: str) -> str:
    """Qualify ``:class:`History``` by the package that documents ``home``'s names.

    A summary is shown on the page of the package that re-exports the name (``jdl.fit``
    on the ``jdl`` page), where the docstring's short references would not resolve.
    """

    def qualify(match):
        role, target = match.group(1), match.group(2)
        parts = home.split(".")
        for i in range(1, len(parts) + 1):  # the package first: it documents the name
            package = ".".join(parts[:i])
            module = sys.modules.get(package)
            if module is not None and target in getattr(module, "__all__", ()):
                return f":{role}:`~{package}.{target}`"
        return match.group(0)

    return re.sub(r":(py:\w+|class|func|meth|data|exc|obj|attr):`(\w+)`", qualify, text)


def _autodoc_directive(value) -> str | None:
    """The autodoc directive that documents ``value`` (``None``: a module, not documented)."""
    if inspect.ismodule(value):
        return None
    if inspect.isclass(value):
        return "autoexception" if issubclass(value, BaseException) else "autoclass"
    if callable(value):
        return "autofunction"
    return "autodata"


class ApiDirective(SphinxDirective):
    """``.. jdl-api:: jdl.nn`` — grouped summary tables, then the entries, group by group.

    ``:summary-only:`` writes the tables only (the ``jdl`` page documents its entries by
    hand). A module in a group gets a table row (linking to its own section or page) and
    no entry.
    """

    required_arguments = 1
    has_content = False
    option_spec = {"summary-only": directives.flag}

    def run(self):
        modname = self.arguments[0]
        groups = load_groups().get(modname)
        if groups is None:
            raise self.error(f"docs/api/groups.py has no groups for {modname}")
        self.env.note_dependency(str(GROUPS_FILE))
        module = importlib.import_module(modname)
        rst = [f".. currentmodule:: {modname}", ""]
        for title, names in groups:
            rst += [f".. rubric:: {title}", "", ".. list-table::", "   :class: jdl-api-summary"]
            rst += ["   :widths: 30 70", ""]
            for name in names:
                rst += [
                    f"   * - :py:obj:`~{modname}.{name}`",
                    f"     - {summary_line(modname, name) or ' '}",
                ]
            rst += [""]
        if "summary-only" not in self.options:
            for title, names in groups:
                rst += [title, "-" * len(title), ""]
                for name in names:
                    directive = _autodoc_directive(getattr(module, name))
                    if directive:
                        rst += [f".. {directive}:: {name}", ""]
        rst += [f".. currentmodule:: {modname}", ""]
        return self.parse_text_to_nodes("\n".join(rst), allow_section_headings=True)


# -- signatures ----------------------------------------------------------------------------

#: Types whose documented name is not where they are defined (and not found by shortening).
TYPE_ALIASES = {
    "flax.linen.module.Module": "flax.linen.Module",
}
_DOTTED = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return _MISSING
        return obj
    return _MISSING


def public_name(dotted: str) -> str:
    """The documented name of a dotted type name: its shortest public alias.

    Only names with a private part (``jax.jaxlib._jax.Array``) or in jdl
    (``jdl.train.state.TrainState``) are shortened, to the shortest ``package.Name`` that
    holds the very same object (``jax.Array``, ``jdl.train.TrainState``).
    """
    if dotted in TYPE_ALIASES:
        return TYPE_ALIASES[dotted]
    parts = dotted.split(".")
    if not (parts[0] == "jdl" or any(p.startswith("_") for p in parts[1:-1])):
        return dotted
    obj = _resolve(dotted)
    for i in range(1, len(parts) - 1):
        prefix = ".".join(parts[:i])
        try:
            holder = importlib.import_module(prefix)
        except Exception:
            continue
        if parts[0] == "jdl" and parts[-1] not in getattr(holder, "__all__", ()):
            continue
        candidate = getattr(holder, parts[-1], _MISSING)
        if candidate is _MISSING:
            continue
        # Compiled classes may name a module that cannot be imported (jax.jaxlib._jax).
        where = f"{getattr(candidate, '__module__', '')}.{getattr(candidate, '__qualname__', '')}"
        if candidate is obj or (obj is _MISSING and where == dotted):
            return f"{prefix}.{parts[-1]}"
    return dotted


def public_names_in(text: str) -> str:
    """``text`` (a signature) with every dotted type name replaced by :func:`public_name`."""
    return _DOTTED.sub(lambda m: public_name(m.group(1)), text)


def _source_defaults(cls) -> dict[str, str]:
    """Field name -> the default as written in the class body, for ``cls`` and its bases."""
    defaults: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("jdl"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for node in body:
            if not (isinstance(node, ast.AnnAssign) and node.value is not None):
                continue
            if not isinstance(node.target, ast.Name):
                continue
            value = node.value
            text = ast.get_source_segment(source, value)
            if isinstance(value, ast.Call) and ast.unparse(value.func).split(".")[-1] == "field":
                keywords = {k.arg: k.value for k in value.keywords}
                if "default" in keywords:
                    text = ast.get_source_segment(source, keywords["default"])
                elif "default_factory" in keywords:
                    text = ast.get_source_segment(source, keywords["default_factory"]) + "()"
                else:
                    continue
            defaults[node.target.id] = text
    return defaults


class _Source:
    """A default value shown as its source text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def dataclass_signature(cls) -> str | None:
    """The signature of a jdl dataclass (or Flax module) with source defaults, or ``None``."""
    if not (dataclasses.is_dataclass(cls) and cls.__module__.startswith("jdl")):
        return None
    try:  # annotations evaluated, as autodoc does
        sig = sphinx_signature(cls.__init__, bound_method=True)
    except (TypeError, ValueError, NameError):
        return None
    defaults = _source_defaults(cls)
    params = []
    for param in sig.parameters.values():
        if param.name == "parent" and "flax.linen" in str(param.annotation):
            continue  # Flax's internal link to the enclosing module
        if param.default is not inspect.Parameter.empty and param.name in defaults:
            param = param.replace(default=_Source(defaults[param.name]))
        params.append(param)
    sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    return stringify_signature(sig, show_return_annotation=False, unqualified_typehints=True)


def process_signature(app, what, name, obj, options, signature, return_annotation):
    """Source defaults for dataclasses; public type names everywhere (see the module doc)."""
    if what in ("class", "exception") and inspect.isclass(obj):
        signature = dataclass_signature(obj) or signature
    if signature is None and not return_annotation:
        return None
    return (
        public_names_in(signature) if signature else signature,
        public_names_in(return_annotation) if return_annotation else return_annotation,
    )


def setup(app):
    app.connect("viewcode-follow-imported", viewcode_follow_imported)
    app.connect("builder-inited", inject_reexported_doc_comments)
    app.connect("autodoc-process-signature", process_signature)
    app.add_directive("jdl-submodules", SubmodulesDirective)
    app.add_directive("jdl-api", ApiDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
