"""The documentation covers the public API, and the gallery follows its format.

Source-level checks that need no Sphinx build (``nox -s docs`` does the build):

* every jdl sub-package has an API page listed in ``docs/api/index.rst``, and each page
  pulls in its package with ``automodule`` (which documents exactly ``__all__``);
* every name in every public ``__all__`` exists and has a docstring — a doc comment
  (``#:`` or a string after the assignment) for constants, which autodoc needs to list
  them at all;
* every tutorial has a title, a first paragraph and a "Takeaway" section, and every
  gallery section has a ``README.txt``;
* the intersphinx configuration behaves as documented in
  ``docs/intersphinx_inventories.py``;
* the API pages group every public name exactly once (``docs/api/groups.py``).

One small Sphinx build of the API pages alone (no tutorials, plain theme, a few seconds)
checks what only the rendered HTML shows: signatures that parse (no literal
``~typing.Any``), no docstring misread by napoleon, summary tables that link.
"""

from __future__ import annotations

import ast
import html
import importlib
import importlib.resources
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import jdl

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
EXAMPLES = ROOT / "examples"

#: Module -> the API page that documents it.
PAGES = {
    "jdl": "jdl.rst",
    "jdl.nn": "nn.rst",
    "jdl.losses": "losses.rst",
    "jdl.metrics": "metrics.rst",
    "jdl.data": "data.rst",
    "jdl.train": "train.rst",
    "jdl.train.callbacks": "train.rst",
    "jdl.analysis": "analysis.rst",
    "jdl.pretrained": "pretrained.rst",
}
DOCUMENTED_BY_HAND = {("jdl", "__version__")}


def _public_subpackages() -> list[str]:
    return sorted(
        f"jdl.{m.name}" for m in pkgutil.iter_modules(jdl.__path__) if not m.name.startswith("_")
    )


def test_every_subpackage_has_an_api_page_in_the_index():
    index = (API / "index.rst").read_text()
    for module in ["jdl", *_public_subpackages()]:
        assert module in PAGES, f"{module} has no API page: add docs/api/<name>.rst"
        page = PAGES[module]
        assert (API / page).exists(), f"docs/api/{page} is missing"
        assert re.search(rf"^\s+{re.escape(page[:-4])}\s*$", index, re.M), (
            f"docs/api/index.rst does not list {page[:-4]}"
        )


@pytest.mark.parametrize("module", [m for m in PAGES if m != "jdl"])
def test_api_page_documents_the_whole_package(module):
    text = (API / PAGES[module]).read_text()
    directives = re.findall(r"^\.\. automodule:: (\S+)\s*\n((?:\s+:.*\n)*)", text, re.M)
    options = dict(directives).get(module)
    assert options is not None, f"docs/api/{PAGES[module]} has no '.. automodule:: {module}'"
    # The module docstring only: the entries come from ``.. jdl-api::``, group by group
    # (docs/api/groups.py, which must hold every name of __all__).
    assert re.search(r":no-members:\s*$", options, re.M), options
    assert re.search(rf"^\.\. jdl-api:: {re.escape(module)}\s*$", text, re.M), (
        f"docs/api/{PAGES[module]} has no '.. jdl-api:: {module}' (summary tables + entries)"
    )


def _api_groups() -> dict[str, list[tuple[str, list[str]]]]:
    spec = importlib.util.spec_from_file_location("jdl_api_groups", API / "groups.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GROUPS


def test_top_level_page_opens_with_its_summary_tables():
    text = (API / "jdl.rst").read_text()
    assert re.search(r"^\.\. jdl-api:: jdl\n   :summary-only:$", text, re.M)


@pytest.mark.parametrize("module_name", list(PAGES))
def test_api_groups_hold_every_public_name_exactly_once(module_name):
    groups = _api_groups()
    assert module_name in groups, f"docs/api/groups.py has no groups for {module_name}"
    public = list(importlib.import_module(module_name).__all__)
    grouped = [name for _, names in groups[module_name] for name in names]
    titles = [title for title, _ in groups[module_name]]
    assert len(set(titles)) == len(titles), f"{module_name}: two groups with one title"
    assert all(names for _, names in groups[module_name]), f"{module_name}: an empty group"
    twice = sorted({name for name in grouped if grouped.count(name) > 1})
    missing = [name for name in public if name not in grouped]
    unknown = [name for name in grouped if name not in public]
    assert not (twice or missing or unknown), (
        f"docs/api/groups.py, {module_name}: in two groups: {twice}; in no group (add them): "
        f"{missing}; not in __all__: {unknown}"
    )


def test_groups_check_fails_on_a_missing_or_doubled_name(monkeypatch):
    groups = _api_groups()
    (title, names), *rest = groups["jdl.losses"]
    broken = {"jdl.losses": [(title, names[1:] + ["l1"]), *rest]}  # drops one, doubles l1
    monkeypatch.setattr(sys.modules[__name__], "_api_groups", lambda: broken)
    with pytest.raises(AssertionError, match=r"in two groups: \['l1'\]; in no group.*mse"):
        test_api_groups_hold_every_public_name_exactly_once("jdl.losses")


def test_autodoc_defaults_document_members_from_all():
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r'"members":\s*True', conf)
    assert "ignore-module-all" not in conf


def test_top_level_page_names_every_public_name():
    """Functions and constants by hand; the sub-packages are rows of the summary tables."""
    text = (API / "jdl.rst").read_text()
    for name in jdl.__all__:
        if inspect.ismodule(getattr(jdl, name)):
            continue
        assert re.search(rf"(jdl\.{re.escape(name)}\b|::\s*{re.escape(name)}\b)", text), (
            f"docs/api/jdl.rst does not mention jdl.{name}"
        )


def _has_doc_comment(module_name: str, name: str, value: object) -> bool:
    """Whether ``name`` has a ``#:`` comment or a docstring where ``value`` is assigned."""
    candidates = [module_name] + sorted(
        m for m in sys.modules if m.startswith(module_name + ".") and sys.modules[m] is not None
    )
    for candidate in candidates:
        module = sys.modules[candidate]
        if getattr(module, name, None) is not value or not getattr(module, "__file__", None):
            continue
        source = Path(module.__file__).read_text()
        lines = source.splitlines()
        body = ast.parse(source).body
        for i, node in enumerate(body):
            targets = (
                [t.id for t in node.targets if isinstance(t, ast.Name)]
                if isinstance(node, ast.Assign)
                else [node.target.id]
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                else []
            )
            if name not in targets:
                continue
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            after = body[i + 1] if i + 1 < len(body) else None
            docstring_after = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
            if above.startswith("#:") or "#:" in lines[node.lineno - 1] or docstring_after:
                return True
    return False


def _docstring_problem(module_name: str, name: str, value: object) -> str | None:
    if inspect.ismodule(value):
        return None if (value.__doc__ or "").strip() else "module without a docstring"
    if inspect.isclass(value):
        doc = value.__dict__.get("__doc__")
        if not (doc or "").strip():
            return "class without its own docstring"
        if doc.startswith(f"{value.__name__}("):  # the signature dataclasses write
            return "class without a docstring (only the dataclass signature)"
        return None
    if callable(value):
        return None if (inspect.getdoc(value) or "").strip() else "function without a docstring"
    if _has_doc_comment(module_name, name, value):
        return None
    return "constant without a doc comment (#: above it or a string below it)"


@pytest.mark.parametrize("module_name", list(PAGES))
def test_every_public_name_exists_and_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} has no __all__"
    assert len(set(names)) == len(names), f"{module_name}.__all__ has duplicates"
    problems = []
    for name in names:
        if (module_name, name) in DOCUMENTED_BY_HAND:
            continue
        if not hasattr(module, name):
            problems.append(f"{name}: listed in __all__ but missing")
            continue
        problem = _docstring_problem(module_name, name, getattr(module, name))
        if problem:
            problems.append(f"{name}: {problem}")
    assert not problems, f"{module_name}:\n  " + "\n  ".join(problems)


def test_names_documented_by_hand_are_on_the_page():
    text = (API / "jdl.rst").read_text()
    for _, name in DOCUMENTED_BY_HAND:
        assert f".. py:data:: {name}" in text


# -- the gallery -------------------------------------------------------------------------

SECTIONS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("_"))
TUTORIALS = sorted(EXAMPLES.glob("**/plot_*.py"))


def test_gallery_root_and_sections_have_readmes():
    assert (EXAMPLES / "README.txt").exists()
    for section in SECTIONS:
        if section.name == "__pycache__":
            continue
        readme = section / "README.txt"
        assert readme.exists(), f"{section.name}/ has no README.txt (sphinx-gallery needs it)"
        assert re.match(r"\d\d_", section.name), f"{section.name}: sections are named NN_topic"
        lines = [line for line in readme.read_text().splitlines() if line.strip()]
        # Sections are one level below the gallery's '====' title: all underline with '-'.
        titles = [i for i in range(1, len(lines)) if re.fullmatch(r"-+", lines[i].strip())]
        assert titles, f"{readme} has no title underlined with '----'"


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_has_title_first_paragraph_and_takeaway(script):
    source = script.read_text()
    doc = ast.get_docstring(ast.parse(source), clean=False)
    assert doc, f"{script.name} has no module docstring"
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 4, f"{script.name}: docstring needs a title and a first paragraph"
    title, underline = lines[0], lines[1]
    assert re.fullmatch(r"=+", underline) and len(underline) >= len(title), (
        f"{script.name}: the title must be underlined with '=' at least as long as it"
    )
    assert lines[2].strip() == "" and lines[3].strip(), f"{script.name}: no first paragraph"
    assert re.search(r"^# Takeaway\n# -+$", source, re.M), (
        f"{script.name}: end with a '# Takeaway' section (a '# %%' cell titled Takeaway)"
    )


# -- intersphinx -------------------------------------------------------------------------


@pytest.fixture
def inventories():
    spec = importlib.util.spec_from_file_location(
        "intersphinx_inventories", DOCS / "intersphinx_inventories.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_intersphinx_remote_mode_links_every_project(inventories):
    mapping, missing = inventories.intersphinx_mapping("remote")
    assert set(mapping) == set(inventories.PROJECTS) >= {"python", "numpy", "jax", "flax", "optax"}
    assert missing == []
    assert all(location is None for _, location in mapping.values())


def test_intersphinx_cache_mode_uses_only_cached_files(inventories, tmp_path):
    inventories.cache_file("numpy", tmp_path).write_bytes(b"# Sphinx inventory version 2\n")
    mapping, missing = inventories.intersphinx_mapping("cache", tmp_path)
    assert mapping == {
        "numpy": (inventories.PROJECTS["numpy"], str(inventories.cache_file("numpy", tmp_path)))
    }
    assert sorted(missing) == sorted(set(inventories.PROJECTS) - {"numpy"})
    assert inventories.intersphinx_mapping("off", tmp_path) == ({}, list(inventories.PROJECTS))
    with pytest.raises(ValueError, match="JDL_DOCS_INTERSPHINX"):
        inventories.intersphinx_mapping("sometimes", tmp_path)


def test_intersphinx_fetch_keeps_a_good_cache_when_offline(inventories, tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(inventories.urllib.request, "urlopen", unreachable)
    good = inventories.cache_file("jax", tmp_path)
    good.write_bytes(b"# Sphinx inventory version 2\nkept")
    status = inventories.fetch(tmp_path, max_age_days=0)
    assert status["jax"].startswith("unavailable (stale cache kept)")
    assert status["numpy"].startswith("unavailable: OSError")
    assert good.read_bytes().endswith(b"kept")
    assert not inventories.cache_file("numpy", tmp_path).exists()


# -- the landing page's example --------------------------------------------------------


def _python_blocks(page: Path) -> list[str]:
    """The ``.. code-block:: python`` blocks of an rst page, dedented."""
    blocks = []
    for match in re.finditer(
        r"^\.\. code-block:: python\n\n((?:[ ]{3}.*\n|\n)+)", page.read_text(), re.M
    ):
        lines = [line[3:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


def test_landing_page_example_is_short():
    (block,) = _python_blocks(DOCS / "index.rst")
    code = [line for line in block.splitlines() if line.strip()]
    assert len(code) <= 15, f"the landing example has {len(code)} lines:\n{block}"


# Every page's code runs as written: tests/test_docs_blocks.py.


# -- the HTML checker itself -------------------------------------------------------------


@pytest.fixture
def check_html():
    spec = importlib.util.spec_from_file_location("check_html", DOCS / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_html_checker_finds_broken_links_fragments_and_images(check_html, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "good.png")
    plt.close(fig)
    (tmp_path / "fake.png").write_text("not an image")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text('<h1 id="top">x</h1><a href="../index.html">up</a>')
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#top">ok</a> <a href="https://example.org/x">external</a>'
        '<a href="#here" id="here">self</a> <img src="good.png">'
        '<a href="sub/missing.html">missing</a> <a href="sub/page.html#nowhere">bad anchor</a>'
        '<img src="fake.png"> <script src="_static/gone.js"></script>'
    )
    problems, pages, links = check_html.check_links(tmp_path)
    assert pages == 2 and links == 8  # the external link is not counted
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "missing.html" in text and "'nowhere'" in text and "fake.png" in text
    assert "gone.js" in text
    assert not check_html.png_is_blank(tmp_path / "good.png")


def test_png_blank_detection(check_html, tmp_path):
    import struct
    import zlib

    def png(width, height, rows):
        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        raw = b"".join(b"\x00" + row for row in rows)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )

    white = [bytes([255, 255, 255] * 40)] * 100
    (tmp_path / "blank.png").write_bytes(png(40, 100, white))
    drawn = [bytes([255, 255, 255] * 20 + [10 * (i % 20), 0, 200] * 20) for i in range(100)]
    (tmp_path / "drawn.png").write_bytes(png(40, 100, drawn))
    assert check_html.png_is_blank(tmp_path / "blank.png")
    assert not check_html.png_is_blank(tmp_path / "drawn.png")


# -- the rendered API pages --------------------------------------------------------------

API_BUILD_CONF = """
import runpy

globals().update(
    {k: v for k, v in runpy.run_path(DOCS_CONF).items() if not k.startswith("__")}
)
# The API pages alone: no gallery, the plain theme (the signatures' HTML is the domain's).
# Maths as MathJax markup: only the signatures and entries are looked at.
extensions = [e for e in extensions if e.startswith("sphinx.ext.") or e == "jdl_autodoc"]
extensions.append("sphinx.ext.mathjax")
html_math_renderer = "mathjax"
html_theme = "basic"
html_static_path = []
html_css_files = []
"""


@pytest.fixture(scope="module")
def api_html(tmp_path_factory) -> dict[str, str]:
    """The API pages built by Sphinx with jdl's configuration: page name -> HTML."""
    root = tmp_path_factory.mktemp("apidocs")
    src = root / "src"
    shutil.copytree(API, src / "api", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (src / "index.rst").write_text("API\n===\n\n.. toctree::\n\n   api/index\n")
    (src / "conf.py").write_text(f"DOCS_CONF = {str(DOCS / 'conf.py')!r}\n" + API_BUILD_CONF)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg"}
    env["JDL_DOCS_INTERSPHINX"] = "off"
    out = root / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(src), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return {page.stem: page.read_text() for page in sorted((out / "api").glob("*.html"))}


def _entries(page: str):
    """``(id, signature HTML, body HTML)`` of every object entry of an API page."""
    pattern = r'<dt class="sig sig-object py" id="([^"]+)">(.*?)</dt>\s*<dd>(.*?)</dd>'
    return re.findall(pattern, page, re.S)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_api_pages_were_built(api_html):
    assert set(api_html) >= {page[:-4] for page in PAGES.values()} | {"index"}
    assert 'id="jdl.train.fit"' in api_html["train"]


def test_api_signatures_parse_and_name_types_short(api_html):
    """A signature Sphinx cannot parse is shown as raw text: ``~typing.Any``, ``<class ...>``."""
    problems = []
    for page, text in api_html.items():
        for ident, signature, _ in _entries(text):
            shown = _text(signature)
            # Parsed parameters are split into name/annotation/default spans; the fallback
            # puts the raw text of the whole parameter list in plain "pre" spans.
            if '<em class="sig-param"><span class="pre">' in signature:
                problems.append(f"{page}: {ident}: not parsed: {shown[:200]}")
            params = _text("".join(re.findall(r'<em class="sig-param">(.*?)</em>', signature)))
            for raw in re.findall(r"~[\w.]+|<(?:class|function|factory)\b[^>]*>", params):
                problems.append(f"{page}: {ident}: shows {raw!r}")
            for private in re.findall(r"\b(?:jdl|jax)(?:\.\w+)*\._(?!_)\w+(?:\.\w+)*", shown):
                problems.append(f"{page}: {ident}: private module path {private!r}")
    assert not problems, "\n".join(problems[:40])


def test_api_entries_have_no_misread_type_fields(api_html):
    """napoleon reads ``Name: text`` as the type of an attribute: the summary becomes a field."""
    problems = [
        f"{page}: {ident}: {_text(body)[:120]!r}"
        for page, text in api_html.items()
        for ident, _, body in _entries(text)
        if re.search(r'<dt class="field-\w+">Type<span class="colon">', body)
    ]
    assert not problems, (
        "attribute docstrings read as 'TYPE: summary' (start them with a sentence, not "
        "'something: ...'):\n" + "\n".join(problems)
    )


def test_api_pages_open_with_grouped_summary_tables_that_link(api_html):
    """Every name has a row: a link to its entry (its page for a module) and a summary."""
    groups = _api_groups()
    for module_name, page in PAGES.items():
        text = api_html[page[:-4]]
        module = importlib.import_module(module_name)
        tables = re.findall(r'<table class="[^"]*jdl-api-summary[^"]*">(.*?)</table>', text, re.S)
        rows = [row for table in tables for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]
        assert text.find("jdl-api-summary") < text.find('<dt class="sig'), f"{page}: tables first"
        for title, names in groups[module_name]:
            assert f">{html.escape(title)}</p>" in text, f"{page}: no summary heading {title!r}"
            for name in names:
                full = f"{module_name}.{name}"
                link = rf'<a class="reference internal" href="([^"]*)" title="{re.escape(full)}">'
                found = [(m.group(1), row) for row in rows if (m := re.search(link, row))]
                assert found, f"{page}: {full} has no linked row in the summary tables"
                href, row = found[0]
                summary = _text(re.findall(r"<td>(.*?)</td>", row, re.S)[-1]).strip()
                assert summary, f"{page}: {full} has no summary"
                # A short reference (:class:`History`) that did not resolve where the
                # summary is shown: a code span outside a link.
                unresolved = re.findall(r'(?<!">)<code class="xref[^>]*>(.*?)</code>', row, re.S)
                short = [_text(u) for u in unresolved if "." not in _text(u)]
                assert not short, f"{page}: {full}'s summary does not link {short}"
                if module_name != "jdl" and not inspect.ismodule(getattr(module, name)):
                    assert href == f"#{full}", f"{page}: {full}'s row links to {href}"
                    assert f'id="{full}"' in text, f"{page}: no entry for {full}"


def test_api_entries_follow_the_groups(api_html):
    """Each group is a section holding its entries, in the order of docs/api/groups.py."""
    groups = _api_groups()
    for module_name in ("jdl.nn", "jdl.analysis"):
        text = api_html[PAGES[module_name][:-4]]
        module = importlib.import_module(module_name)
        for title, names in groups[module_name]:
            slug = re.sub(r"[^\w]+", "-", title.lower()).strip("-")
            match = re.search(rf'<section id="{slug}(?:-\d+)?">(.*?)(?=<section id=|$)', text, re.S)
            assert match, f"{module_name}: no section {title!r}"
            ids = [i for i, _, _ in _entries(match.group(1)) if i.count(".") == 2]
            expected = [
                f"{module_name}.{n}" for n in names if not inspect.ismodule(getattr(module, n))
            ]
            assert ids == expected, (title, ids, expected)


# -- packaging -----------------------------------------------------------------------------


def test_package_ships_py_typed():
    """PEP 561: the marker is in the package and the build backend is told to include it."""
    assert (importlib.resources.files("jdl") / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get("jdl", [])


def test_html_checks_catch_raw_signatures_and_misread_types():
    """The two checks above fail on the HTML that the issue found (as Sphinx writes it)."""
    raw = (
        '<dt class="sig sig-object py" id="jdl.x.Pretrained"><span class="sig-paren">(</span>'
        '<em class="sig-param"><span class="pre">model:</span> <span class="pre">~typing.Any'
        "</span></em></dt>\n<dd><p>A model.</p></dd>"
    )
    misread = (
        '<dt class="sig sig-object py" id="jdl.x.History.variables">variables</dt>\n<dd>'
        '<p>plus "batch_stats".</p><dl class="field-list simple"><dt class="field-odd">Type'
        '<span class="colon">:</span></dt><dd class="field-odd"><p>The final model variables'
        "</p></dd></dl></dd>"
    )
    with pytest.raises(AssertionError, match=r"not parsed.*\n.*shows '~typing.Any'"):
        test_api_signatures_parse_and_name_types_short({"x": raw})
    with pytest.raises(AssertionError, match="jdl.x.History.variables"):
        test_api_entries_have_no_misread_type_fields({"x": misread})
