"""Every Python block of the documentation runs as written.

Each ``.rst`` page under ``docs/`` (the generated ``_build``, ``auto_examples`` and
``gen_modules`` folders aside; the tutorials are run by the gallery) is one session, as a
reader copying its blocks would have: its ``.. code-block:: python`` blocks (and ``::``
literal blocks that are Python) run in order in one namespace, in a fresh working
directory, on the CPU, within :data:`BUDGET_S` seconds. A failure names the page, the
block's number and its first line in the file.

A block that cannot run here — it needs a cluster, several processes, the network, a GPU
or files a reader brings — is marked by an rst comment right before it::

    .. jdl-doc: no-run (needs a cluster)

    .. code-block:: python

and is still checked: it must compile, every ``jdl.a.b`` attribute chain and every
``from jdl... import`` in it must exist, and every name it reads must be defined in the
block itself, by an earlier block of the page, or be a builtin. The reason in parentheses
is required. ``bash`` and other non-Python blocks are not run.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import os
import re
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import jdl

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Generated folders: Sphinx output, sphinx-gallery pages (the tutorials run in the
#: gallery tests and the docs build) and autosummary stubs.
GENERATED = {"_build", "auto_examples", "gen_modules", "_static", "_ext"}
GENERATED_FILES = {"sg_execution_times.rst"}  # sphinx-gallery's timing table
#: The longest a page may run. A page that trains longer should use a smaller setting.
BUDGET_S = float(os.environ.get("JDL_DOCS_BUDGET_S", "60"))
PYTHON = {"python", "python3", "py"}
#: Languages that are shown, never run.
SHOWN = {"bash", "console", "shell", "sh", "text", "none", "json", "toml", "yaml", "ini"}
MARKER = re.compile(r"^\.\. jdl-doc: no-run \((?P<reason>[^)]+)\)\s*$")


@dataclass(frozen=True)
class Block:
    """One code block of a page."""

    page: Path
    number: int  #: 1-based, among the page's Python blocks
    line: int  #: 1-based line of the block's first code line in the file
    code: str
    no_run: str | None  #: the reason, for a block marked no-run

    def where(self) -> str:
        return f"{_name(self.page)}, Python block {self.number} (line {self.line})"


def _name(page: Path) -> str:
    """The page's path relative to the repository (just its name outside it)."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def _pages() -> list[Path]:
    return sorted(
        p
        for p in DOCS.rglob("*.rst")
        if not GENERATED & set(p.relative_to(DOCS).parts[:-1]) and p.name not in GENERATED_FILES
    )


def _indented_body(lines: list[str], start: int) -> tuple[int, list[str]]:
    """The indented body that starts at ``lines[start]`` (after blank lines): first line, text."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not lines[i][:1].isspace():
        return i, []
    indent = len(lines[i]) - len(lines[i].lstrip())
    body, j = [], i
    while j < len(lines) and (
        not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) >= indent
    ):
        body.append(lines[j][indent:])
        j += 1
    while body and not body[-1].strip():
        body.pop()
    return i, body


def _looks_like_python(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.Import, ast.ImportFrom, ast.Call)) for n in ast.walk(tree))


def page_blocks(page: Path) -> list[Block]:
    """The Python blocks of ``page`` in order, each with its no-run reason (or ``None``)."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    marker: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(".. jdl-doc:"):
            match = MARKER.match(stripped)
            if not match:
                raise AssertionError(
                    f"{_name(page)}:{i + 1}: expected '.. jdl-doc: no-run (why)', got {line!r}"
                )
            marker = match["reason"]
            i += 1
            continue
        directive = re.match(r"^\s*\.\. code-block::\s*(\S*)\s*$", line)
        literal = (
            not directive
            and stripped.endswith("::")
            and not re.match(r"^\s*\.\. ", line)
            and not stripped.startswith(":")
        )
        if not (directive or literal):
            if stripped and marker is not None:
                raise AssertionError(
                    f"{_name(page)}:{i + 1}: a '.. jdl-doc: no-run' marker must be "
                    "followed directly by the code block it marks"
                )
            i += 1
            continue
        j = i + 1
        if directive:  # skip the directive's options (":caption: ...")
            while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):
                j += 1
        first, body = _indented_body(lines, j)
        code = "\n".join(body) + "\n"
        if directive:
            language = directive[1] or "python"
            is_python = language in PYTHON
            assert is_python or language in SHOWN, (
                f"{_name(page)}:{i + 1}: code-block language {language!r} is "
                f"neither run ({sorted(PYTHON)}) nor known to be shown only ({sorted(SHOWN)})"
            )
        else:
            is_python = bool(body) and _looks_like_python(code)
        if is_python:
            blocks.append(Block(page, len(blocks) + 1, first + 1, code, marker))
        elif marker is not None:
            raise AssertionError(
                f"{_name(page)}:{i + 1}: '.. jdl-doc: no-run' marks a block that "
                "is not Python (only Python blocks run)"
            )
        marker = None
        i = first + len(body) if body else i + 1
    return blocks


# -- checks of a block that does not run ----------------------------------------------


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "jdl":
        return ["jdl", *reversed(parts)]
    return None


def _resolve(dotted: list[str]) -> str | None:
    """A problem with ``jdl.a.b...``, or ``None`` when every attribute exists."""
    obj = jdl
    for k, name in enumerate(dotted[1:], start=1):
        if not hasattr(obj, name):
            try:
                obj = importlib.import_module(".".join(dotted[: k + 1]))
                continue
            except ImportError:
                return f"{'.'.join(dotted[: k + 1])} does not exist"
        obj = getattr(obj, name)
    return None


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the block binds anywhere (scopes ignored: doc blocks are small)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def check_without_running(block: Block, namespace: dict) -> list[str]:
    """Problems of a no-run block: syntax, missing ``jdl`` names, undefined names."""
    try:
        tree = ast.parse(block.code, filename=str(block.page))
    except SyntaxError as e:
        return [f"does not compile: {e.msg} (block line {e.lineno})"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain = _attribute_chain(node)
            if chain and (problem := _resolve(chain)):
                problems.append(f"line {node.lineno}: {problem}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jdl"):
            for alias in node.names:
                problem = _resolve([*node.module.split("."), alias.name])
                if problem:
                    problems.append(f"line {node.lineno}: {problem}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jdl") and (problem := _resolve(alias.name.split("."))):
                    problems.append(f"line {node.lineno}: {problem}")
    known = _bound_names(tree) | set(namespace) | set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
            problems.append(f"line {node.lineno}: {node.id!r} is not defined on the page")
            known.add(node.id)
    return problems


# -- running a page ------------------------------------------------------------------------


class PageTimeout(Exception):
    pass


def run_page(page: Path, budget_s: float = BUDGET_S) -> tuple[dict, list[Block], list[float]]:
    """Run the page's blocks in order in one namespace; (namespace, blocks, seconds of each).

    A no-run block is checked against the names of the blocks before it, run or not (a
    reader who can run it would have run those too).
    """
    blocks = page_blocks(page)
    # The namespace is a module's, registered while the page runs, as a script's would be:
    # a dataclass (a flax.linen.Module) defined in a block looks its module up there.
    module = types.ModuleType(f"docs_{page.stem}")
    sys.modules[module.__name__] = module
    namespace: dict = module.__dict__
    declared: set[str] = set()  # names bound by no-run blocks
    seconds = []

    def alarm(signum, frame):
        raise PageTimeout(f"the page ran past its budget of {budget_s:g} s")

    timed = threading.current_thread() is threading.main_thread()  # signals need it
    if timed:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, budget_s)
    try:
        for block in blocks:
            start = time.perf_counter()
            if block.no_run is not None:
                problems = check_without_running(block, {**namespace, **dict.fromkeys(declared)})
                assert not problems, f"{block.where()} (no-run: {block.no_run}):\n  " + (
                    "\n  ".join(problems)
                )
                declared |= _bound_names(ast.parse(block.code))
            else:
                # Pad so tracebacks give the line in the .rst file.
                source = "\n" * (block.line - 1) + block.code
                try:
                    exec(compile(source, str(page), "exec"), namespace)
                except Exception as e:
                    message = f"{block.where()} failed: {type(e).__name__}: {e}"
                    raise AssertionError(message) from e
            seconds.append(time.perf_counter() - start)
    finally:
        sys.modules.pop(module.__name__, None)
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return namespace, blocks, seconds


def _has_python(page: Path) -> bool:
    try:
        return bool(page_blocks(page))
    except AssertionError:  # a malformed marker: test_every_page_reads reports it
        return True


PAGES = _pages()
CODE_PAGES = [p for p in PAGES if _has_python(p)]


@pytest.fixture
def doc_session(tmp_path, monkeypatch):
    """A reader's session: a fresh working directory, the CPU, a non-interactive plot backend."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    yield tmp_path
    plt.close("all")


#: What a page's output promises, checked after it ran: page -> check(namespace, stdout).
def _check_index(ns, out):
    metrics = ns["jdl"].evaluate(ns["model"], ns["history"].variables, ns["test"])
    assert metrics["accuracy"] > 0.9, metrics  # the page promises about 97 %


def _check_getting_started(ns, out):
    assert "15210" in out and "(5, 10)" in out, out
    assert "['accuracy', 'loss', 'val_accuracy', 'val_loss']" in out, out


def _check_own_loop(ns, out):
    # The summed eval_step results count every example once and equal jdl.evaluate's.
    assert ns["count"] == len(ns["test"]), ns["count"]
    expected = ns["jdl"].evaluate(ns["model"], ns["state"], ns["test"])
    for name, value in expected.items():
        assert ns["totals"][name] / ns["count"] == pytest.approx(value, rel=1e-5), name


PROMISES = {
    "index.rst": _check_index,
    "getting_started.rst": _check_getting_started,
    "howto/own_loop.rst": _check_own_loop,
}


@pytest.mark.slow
@pytest.mark.parametrize("page", CODE_PAGES, ids=[str(p.relative_to(DOCS)) for p in CODE_PAGES])
def test_page_code_runs_as_written(page, doc_session, capsys):
    namespace, blocks, seconds = run_page(page)
    out = capsys.readouterr().out
    name = str(page.relative_to(DOCS))
    if name in PROMISES:
        PROMISES[name](namespace, out)
    ran = sum(b.no_run is None for b in blocks)
    each = ", ".join(f"{s:.1f}" for s in seconds)
    with capsys.disabled():
        print(
            f"\n{name}: {ran} blocks run, {len(blocks) - ran} no-run, {sum(seconds):.1f} s ({each})"
        )


def test_every_page_reads():
    names = {str(p.relative_to(DOCS)) for p in PAGES}
    assert {"index.rst", "getting_started.rst", "howto/own_loop.rst", "api/train.rst"} <= names
    assert not any(n.startswith(("auto_examples", "_build", "gen_modules")) for n in names)
    assert "sg_execution_times.rst" not in names
    for page in PAGES:
        page_blocks(page)  # raises on a malformed marker or an unknown language


# -- the runner itself ---------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.rst"
    page.write_text(text)
    return page


def test_blocks_are_extracted_with_markers_options_and_literals(tmp_path):
    page = _write(
        tmp_path,
        "Title\n=====\n\n.. code-block:: python\n   :caption: one\n\n   a = 1\n\n   b = a\n\n"
        "Text::\n\n    print(a + b)\n\nA diagram::\n\n    data -> nn -> train\n\n"
        ".. code-block:: bash\n\n   echo no\n\n"
        ".. jdl-doc: no-run (needs a cluster)\n\n.. code-block:: python\n\n   c = b\n",
    )
    blocks = page_blocks(page)
    assert [b.code for b in blocks] == ["a = 1\n\nb = a\n", "print(a + b)\n", "c = b\n"]
    assert [b.no_run for b in blocks] == [None, None, "needs a cluster"]
    assert [b.line for b in blocks] == [7, 13, 27]


def test_a_failing_block_is_named_by_page_and_number(tmp_path):
    page = _write(
        tmp_path, ".. code-block:: python\n\n   x = 1\n\n.. code-block:: python\n\n   y\n"
    )
    with pytest.raises(AssertionError, match=r"page.rst, Python block 2 \(line 7\) failed: Name"):
        run_page(page)


def test_a_no_run_block_is_checked_for_syntax_jdl_names_and_undefined_names(tmp_path):
    def problems(code, namespace=()):
        block = Block(tmp_path / "p.rst", 1, 1, code, "needs a cluster")
        return check_without_running(block, dict.fromkeys(namespace))

    assert problems("import jdl\nm = jdl.nn.MLP\nfrom jdl.train import fit\njdl.fit(m)\n") == []
    assert problems("jdl.train.parallelize(step, 'sharded')", ["jdl", "step"]) == []
    assert "does not compile" in problems("def f(:\n")[0]
    assert problems("import jdl\njdl.nn.NoSuchModel()\n") == [
        "line 2: jdl.nn.NoSuchModel does not exist"
    ]
    assert problems("from jdl.train import no_such\n") == [
        "line 1: jdl.train.no_such does not exist"
    ]
    assert problems("import jdl\njdl.fit(model)\n") == [
        "line 2: 'model' is not defined on the page"
    ]
    assert problems("jdl.fit(model)\n", ["jdl", "model"]) == []


def test_a_no_run_block_may_use_names_of_earlier_no_run_blocks_a_run_block_may_not(tmp_path):
    no_run = ".. jdl-doc: no-run (needs the network)\n\n.. code-block:: python\n\n"
    run = ".. code-block:: python\n\n"
    page = _write(tmp_path, f"{no_run}   import jdl\n   p = 1\n\n{no_run}   jdl.fit(p)\n")
    _, blocks, _ = run_page(page)
    assert [b.no_run for b in blocks] == ["needs the network"] * 2
    page = _write(tmp_path, f"{no_run}   p = 1\n\n{run}   print(p)\n")
    with pytest.raises(AssertionError, match="Python block 2 .*NameError"):
        run_page(page)


def test_a_literal_block_that_is_not_python_is_text(tmp_path):
    page = _write(
        tmp_path, "Layers::\n\n    _core  ->  data\n\nEnd::\n.. code-block:: python\n\n   x = 1\n"
    )
    assert [b.code for b in page_blocks(page)] == ["x = 1\n"]


def test_a_marker_must_have_a_reason_and_mark_a_python_block(tmp_path):
    with pytest.raises(AssertionError, match="no-run \\(why\\)"):
        page_blocks(_write(tmp_path, ".. jdl-doc: no-run\n\n.. code-block:: python\n\n   x\n"))
    with pytest.raises(AssertionError, match="not Python"):
        page_blocks(_write(tmp_path, ".. jdl-doc: no-run (x)\n\n.. code-block:: bash\n\n   ls\n"))
    with pytest.raises(AssertionError, match="followed directly"):
        page_blocks(_write(tmp_path, ".. jdl-doc: no-run (x)\n\nSome text.\n"))


def test_a_page_past_its_budget_stops_with_its_name(tmp_path):
    page = _write(tmp_path, ".. code-block:: python\n\n   import time\n   time.sleep(5)\n")
    with pytest.raises(AssertionError, match=r"Python block 1 .*budget of 0.2 s"):
        run_page(page, budget_s=0.2)
