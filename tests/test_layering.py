"""jdl's layering (DESIGN.md, "Layout"): every import runs right to left along

    _core -> data -> nn -> losses/metrics -> train -> analysis/pretrained -> CLI (__main__, _cli)

and no two modules import each other, directly or round a longer loop -- also not through
an import deferred into a function, which hides a cycle without removing it.

The checker reads the sources with :mod:`ast` (nothing is imported), so it sees every
import, including those inside functions. Modules of the same rank (``losses`` and
``metrics``; ``analysis`` and ``pretrained``) may import each other's modules only where
:data:`SAME_RANK_ALLOWED` says so. ``jdl/__init__.py``, the package root that re-exports the
public surface, is the top and exempt; importing it from inside the package counts as
importing the top.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jdl"

#: The rank of each top-level part of jdl; a module may import only ranks <= its own.
RANKS: dict[str, int] = {
    "_core": 0,
    "data": 1,
    "nn": 2,
    "losses": 3,
    "metrics": 3,
    "train": 4,
    "analysis": 5,
    "pretrained": 5,
    "__main__": 6,
    "_cli": 6,
}
#: ``jdl`` itself re-exports everything, so it sits at the top, with the CLI (which uses
#: the public surface through it).
ROOT_RANK = RANKS["__main__"]

#: Edges between different parts of the same rank that DESIGN allows: metrics are built on
#: the losses (``metrics`` imports ``losses``, never the reverse), and the CLI uses the public
#: surface through the root (``None``); ``jdl.__main__`` is the entry point of the CLI's code
#: in the private package ``jdl._cli`` (never the reverse). ``analysis`` and ``pretrained``
#: are independent of each other.
SAME_RANK_ALLOWED: frozenset[tuple[str, str | None]] = frozenset(
    {("metrics", "losses"), ("__main__", None), ("__main__", "_cli"), ("_cli", None)}
)


@dataclasses.dataclass(frozen=True)
class Import:
    """One import statement's edge: ``importer`` imports ``target`` at ``line``."""

    importer: str
    target: str
    line: int
    #: ``"module"`` (runs when the importer is imported), ``"function"`` (inside a function
    #: body: runs when that is called) or ``"type_checking"`` (never runs).
    kind: str = "module"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``jdl/train/loop.py`` -> ``"jdl.train.loop"``; ``jdl/nn/__init__.py`` -> ``"jdl.nn"``."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str | None:
    """The top-level part (``"train"``, ``"_core"``, ...) of a jdl module; None for the root."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def rank_of(module: str) -> int:
    """The layer rank of a jdl module (see :data:`RANKS`)."""
    part = part_of(module)
    if part is None:
        return ROOT_RANK
    if part not in RANKS:
        raise AssertionError(
            f"{module}: jdl.{part} has no place in the layering; add it to RANKS in "
            "tests/test_layering.py (and to DESIGN.md's Layout)."
        )
    return RANKS[part]


def imports_in(
    source: str, importer: str, *, is_package: bool, known: Iterable[str]
) -> list[Import]:
    """Every import of a jdl module in ``source`` (the text of module ``importer``).

    ``from jdl.x import y`` is an edge to ``jdl.x.y`` where that is a module in ``known``,
    otherwise to ``jdl.x``. Relative imports are resolved against ``importer``. Imports
    under ``if TYPE_CHECKING:`` are never executed: they count for the layering, not for
    cycles.
    """
    known = set(known)
    tree = ast.parse(source)
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = "function" if kind == "module" else kind
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                inner = "type_checking"
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "jdl" or alias.name.startswith("jdl."):
                        found.append(Import(importer, alias.name, child.lineno, kind))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = base[: len(base) - child.level + 1]
                    target = ".".join([*anchor, *([child.module] if child.module else [])])
                else:
                    target = child.module or ""
                if target == "jdl" or target.startswith("jdl."):
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.append(
                            Import(
                                importer,
                                sub if sub in known else target,
                                child.lineno,
                                kind,
                            )
                        )
            visit(child, inner)

    visit(tree, "module")
    # One edge per (statement, target): `from jdl.x import a, b` is one import of jdl.x.
    return list(dict.fromkeys(found))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def layering_errors(imports: Iterable[Import], paths: Mapping[str, str]) -> list[str]:
    """One message per import that runs against the layering.

    Args:
      imports: the edges (from :func:`imports_in`).
      paths: module name -> file path, for the messages.
    """
    errors = []
    for imp in imports:
        if part_of(imp.importer) is None:  # the package root re-exports everything
            continue
        src, dst = rank_of(imp.importer), rank_of(imp.target)
        src_part, dst_part = part_of(imp.importer), part_of(imp.target)
        where = f"{paths.get(imp.importer, imp.importer)}:{imp.line}"
        if dst > src:
            errors.append(
                f"{where}: {imp.importer} (layer {src_part}) imports {imp.target} "
                f"(layer {dst_part or 'jdl root'}), a higher layer; move what it needs down "
                "(a helper two layers need lives in the lower one, e.g. jdl/_core)."
            )
        elif dst == src and src_part != dst_part and (src_part, dst_part) not in SAME_RANK_ALLOWED:
            errors.append(
                f"{where}: {imp.importer} (layer {src_part}) imports {imp.target} "
                f"(layer {dst_part}): these layers share a rank and must stay independent."
            )
    return errors


def cycles(
    imports: Iterable[Import], kinds: Iterable[str] = ("module", "function")
) -> list[list[str]]:
    """The import cycles among the imports of the given ``kinds``, each as ``[m1, ..., m1]``.

    One cycle per strongly connected component of more than one module (or a module that
    imports itself), so a tangle is reported once, not once per loop through it.
    """
    kinds = set(kinds)
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.kind in kinds:
            graph.setdefault(imp.importer, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_loop_through(component, graph) for component in components]


def _loop_through(component: list[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A concrete loop ``[start, ..., start]`` inside a strongly connected component."""
    members = set(component)
    start = component[0]
    # Breadth-first from start back to start, staying inside the component.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no loop in component {component}")


def package_imports(package: Path = PACKAGE) -> tuple[list[Import], dict[str, str]]:
    """Every jdl import in every module of ``package``, and module name -> relative path."""
    files = sorted(package.rglob("*.py"))
    names = {module_name(f, package): f for f in files}
    imports: list[Import] = []
    for name, f in names.items():
        imports += imports_in(f.read_text(), name, is_package=f.name == "__init__.py", known=names)
    paths = {name: str(f.relative_to(package.parent)) for name, f in names.items()}
    return imports, paths


# ---------------------------------------------------------------------------------------
# The package itself


def test_every_import_runs_down_the_layers():
    imports, paths = package_imports()
    assert len(imports) > 100  # the walk did find the package's imports
    errors = layering_errors(imports, paths)
    assert not errors, "imports against the layering:\n" + "\n".join(errors)


def test_no_import_cycles():
    imports, _ = package_imports()
    found = cycles(imports)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_part_of_the_package_has_a_rank():
    parts = {part_of(module_name(f)) for f in PACKAGE.rglob("*.py")} - {None}
    assert parts <= set(RANKS), f"parts without a rank: {sorted(parts - set(RANKS))}"


# ---------------------------------------------------------------------------------------
# The checker itself: it must catch what it is there to catch.

KNOWN = {
    "jdl",
    "jdl._core",
    "jdl._core.tree",
    "jdl.losses",
    "jdl.metrics",
    "jdl.pretrained",
    "jdl.pretrained._tree",
    "jdl.analysis",
    "jdl.train",
    "jdl.train.loop",
    "jdl.train.callbacks",
    "jdl.train.checkpoint",
}


def _errors(source: str, importer: str, *, is_package: bool = False) -> list[str]:
    imports = imports_in(source, importer, is_package=is_package, known=KNOWN)
    return layering_errors(imports, {importer: importer.replace(".", "/") + ".py"})


def test_checker_catches_train_loop_importing_pretrained():
    source = (Path(PACKAGE) / "train" / "loop.py").read_text() + "\nimport jdl.pretrained\n"
    line = source.count("\n")
    imports = imports_in(source, "jdl.train.loop", is_package=False, known=KNOWN)
    errors = layering_errors(imports, {"jdl.train.loop": "jdl/train/loop.py"})
    assert errors == [
        f"jdl/train/loop.py:{line}: jdl.train.loop (layer train) imports jdl.pretrained "
        "(layer pretrained), a higher layer; move what it needs down (a helper two layers "
        "need lives in the lower one, e.g. jdl/_core)."
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import jdl.pretrained",
        "from jdl.pretrained._tree import flatten",
        "from jdl import pretrained",
        "def f():\n    from jdl.pretrained import _tree\n",
        "class C:\n    def m(self):\n        import jdl.analysis\n",
        "from .. import pretrained",
        "import jdl",
    ],
)
def test_checker_sees_every_form_of_import(source):
    assert len(_errors(source, "jdl.train.loop")) == 1


def test_checker_allows_imports_down_and_within_a_layer():
    source = (
        "import numpy\nfrom jdl._core.tree import flatten\nfrom jdl import losses\n"
        "from jdl.train import callbacks\nfrom . import checkpoint\n"
    )
    assert _errors(source, "jdl.train.loop") == []
    assert _errors("from jdl import losses", "jdl.metrics") == []


def test_checker_keeps_same_rank_parts_apart():
    (error,) = _errors("from jdl.analysis import gradients", "jdl.pretrained.surgery")
    assert "share a rank" in error and "jdl.pretrained.surgery" in error
    assert len(_errors("from jdl import metrics", "jdl.losses")) == 1


def test_the_package_root_is_exempt_and_the_top():
    assert _errors("from jdl import pretrained, train", "jdl", is_package=True) == []
    (error,) = _errors("import jdl", "jdl._core.tree")
    assert "jdl root" in error


def _imports(source: str, importer: str) -> list[Import]:
    return imports_in(source, importer, is_package=False, known=KNOWN)


def test_checker_finds_cycles_also_through_deferred_imports():
    a = _imports("from jdl.train import checkpoint", "jdl.train.callbacks")
    b = _imports("from jdl.train.callbacks import X", "jdl.train.checkpoint")
    loop = ["jdl.train.callbacks", "jdl.train.checkpoint", "jdl.train.callbacks"]
    assert cycles(a + b) == [loop]
    # The cycle this test was written for: callbacks imported checkpoint inside a
    # module-level __getattr__, checkpoint imported callbacks at the top.
    lazy = _imports(
        "def __getattr__(name):\n    from jdl.train import checkpoint\n", "jdl.train.callbacks"
    )
    assert [i.kind for i in lazy] == ["function"]
    assert cycles(lazy + b) == [loop]
    assert cycles(lazy + b, kinds=("module",)) == []
    typing_only = _imports(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from jdl.train.callbacks import X\n",
        "jdl.train.checkpoint",
    )
    assert [i.kind for i in typing_only] == ["type_checking"]
    assert cycles(a + typing_only) == []
    assert cycles(a) == []


def test_checker_reports_a_longer_loop_once():
    edges = [
        Import("jdl.train.a", "jdl.train.b", 1),
        Import("jdl.train.b", "jdl.train.c", 1),
        Import("jdl.train.c", "jdl.train.a", 1),
        Import("jdl.train.c", "jdl.train.b", 2),
    ]
    (loop,) = cycles(edges)
    assert loop[0] == loop[-1] == "jdl.train.a"
    assert set(loop) == {"jdl.train.a", "jdl.train.b", "jdl.train.c"}
