"""docs/_ext/jdl_mathml.py: maths become MathML at build time; nothing is left for MathJax."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sphinx_cmd = pytest.importorskip("sphinx.cmd.build")
pytest.importorskip("latex2mathml")

EXT = Path(__file__).resolve().parents[1] / "docs" / "_ext"

CONF = f"""
import sys
sys.path.insert(0, {str(EXT)!r})
extensions = ["jdl_mathml"]
html_math_renderer = "mathml"
"""


def build(tmp_path: Path, body: str) -> tuple[int, str]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.rst").write_text("Maths\n=====\n\n" + body)
    out = tmp_path / "html"
    status = sphinx_cmd.build_main(["-q", "-W", "-b", "html", str(src), str(out)])
    html = (out / "index.html").read_text() if (out / "index.html").exists() else ""
    return status, html


def test_inline_and_block_maths_are_mathml(tmp_path):
    status, html = build(
        tmp_path,
        "Softmax :math:`\\mathrm{softmax}(z)_i = e^{z_i} / \\sum_j e^{z_j}` here.\n\n"
        ".. math::\n   :label: bce\n\n   \\mathrm{BCE}(z, y) = -[y \\log \\sigma(z)]\n\n"
        "   z = x W + b\n",
    )
    assert status == 0
    assert html.count("<math") == 3  # one inline, two equations in the block
    assert 'display="block"' in html and 'display="inline"' in html
    assert '<span class="eqno">(1)</span>' in html
    assert "\\(" not in html and "\\[" not in html and "mathjax" not in html.lower()


def test_a_formula_that_cannot_be_converted_fails_the_build(tmp_path, capsys):
    status, _ = build(tmp_path, "Broken :math:`\\frac{1}{` formula.\n")
    assert status != 0
    assert "cannot convert the formula" in capsys.readouterr().err


def test_the_docs_use_it():
    conf = (EXT.parent / "conf.py").read_text()
    assert '"jdl_mathml"' in conf and 'html_math_renderer = "mathml"' in conf
    assert "sphinx.ext.mathjax" not in conf


def test_check_html_refuses_raw_latex_and_mathjax(tmp_path):
    sys.path.insert(0, str(EXT.parent))
    import check_html

    (tmp_path / "ok.html").write_text(
        '<p>Softmax <math display="inline"><mi>z</mi></math></p>'
        "<pre>re.compile(r'\\(a\\)')</pre><code>$$</code>"
    )
    problems, with_math = check_html.check_maths(tmp_path)
    assert problems == [] and with_math == 1
    (tmp_path / "raw.html").write_text("<p>The loss \\(L = -\\log p\\) is</p>")
    (tmp_path / "cdn.html").write_text('<script src="https://cdn.x/mathjax/tex-chtml.js"></script>')
    problems, _ = check_html.check_maths(tmp_path)
    assert len(problems) == 2
    assert any("raw.html: raw LaTeX" in p for p in problems)
    assert any("cdn.html: loads MathJax" in p for p in problems)
