"""Maths rendered at build time as MathML: no JavaScript, no CDN, readable offline.

Sphinx's default HTML maths renderer (``sphinx.ext.mathjax``) leaves the LaTeX in the page
(``\\(...\\)``) and loads MathJax from a CDN to typeset it in the browser: offline, a reader
sees raw LaTeX. This extension registers the renderer ``"mathml"`` (``html_math_renderer``
in ``conf.py``): every ``:math:`` role and ``.. math::`` block is converted once, while the
docs build, by `latex2mathml <https://pypi.org/project/latex2mathml/>`_ (pure Python), into
MathML, which browsers draw natively (Chromium since version 109, Firefox, Safari). A
formula latex2mathml cannot convert fails the build, naming the formula and the page.
"""

from __future__ import annotations

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError


def _mathml(latex: str, display: str, node: nodes.Node) -> str:
    try:
        out = convert(latex.strip(), display=display)
    except Exception as err:  # latex2mathml raises its own exception types
        raise ExtensionError(
            f"{node.source}:{node.line}: cannot convert the formula {latex!r} to MathML: {err}"
        ) from err
    if "<merror" in out:
        raise ExtensionError(
            f"{node.source}:{node.line}: the formula {latex!r} converts to a MathML error"
        )
    return out


def visit_math(self, node: nodes.math) -> None:
    """An inline formula (``:math:`...```) as inline MathML."""
    self.body.append(f'<span class="math">{_mathml(node.astext(), "inline", node)}</span>')
    raise nodes.SkipNode


def visit_math_block(self, node: nodes.math_block) -> None:
    """A ``.. math::`` block: each blank-line-separated equation as display MathML."""
    self.body.append(self.starttag(node, "div", CLASS="math"))
    if node.get("number"):
        number = self.builder.env.get_domain("math").get_equation_number_for(node["label"])
        self.body.append(f'<span class="eqno">({number})</span>')
    for part in node.astext().split("\n\n"):
        if part.strip():
            self.body.append(_mathml(part, "block", node))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, bool]:
    """Register the ``"mathml"`` HTML maths renderer."""
    app.add_html_math_renderer(
        "mathml", inline_renderers=(visit_math, None), block_renderers=(visit_math_block, None)
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
