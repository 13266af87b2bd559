"""Numbers in tutorial prose agree with the page's own output (issue #18).

``docs/check_html.py`` checks every executed gallery page after ``nox -s docs``: each
percentage, decimal or power of ten in its prose must appear in its output blocks, or be
listed with a reason in ``docs/prose_numbers.toml``. These tests run that check on small
synthetic pages shaped like sphinx-gallery's, and check the allow-list file itself.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def check_html():
    spec = importlib.util.spec_from_file_location("check_html", DOCS / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(prose: str, output: str, code: str = "print(x)") -> str:
    """A gallery page as sphinx-gallery and furo write it: prose, a code cell, its output."""
    return f"""<html><head><title>t 1.5 %</title></head><body>
<nav class="sidebar">Other page 99.9 %</nav>
<article role="main" id="furo-main-content"><section id="t">
<h1>Title (2010)<a class="headerlink" href="#t">#</a></h1>
{prose}
<div class="highlight-Python notranslate"><div class="highlight"><pre><span></span>{code}
</pre></div></div>
<div class="sphx-glr-script-out highlight-none notranslate"><div class="highlight"><pre>
<span></span>{output}
</pre></div></div>
<p class="sphx-glr-timing"><strong>Total running time of the script:</strong>
(0 minutes 12.345 seconds)</p>
</section></article></body></html>"""


def test_prose_and_output_are_told_apart(check_html):
    html = page(
        "<p>Plain <code>lr=0.05</code> reaches 23.9 % (<span class='math'>0.5</span>).</p>"
        "<table><tr><td><p>plain</p></td><td><p>1.8 %</p></td></tr></table>"
        # The HTML repr of a cell's last value is output, not prose.
        '<div class="output_subarea output_html rendered_html output_result">'
        "<table><tr><td>0.123</td></tr></table></div>",
        "plain depth  5: train error 23.9%",
        code="lr = 0.75",
    )
    prose, output = check_html.parse_gallery_page(html)
    assert "Plain reaches 23.9 % ()." in prose  # code and math left out
    assert "plain 1.8 %" in prose  # a table row is one piece
    assert not any("99.9" in p or "12.345" in p or "0.75" in p for p in prose)
    assert "train error 23.9%" in output and "0.75" not in output
    assert "0.123" in output and not any("0.123" in p for p in prose)


def test_numbers_that_look_measured_are_found(check_html):
    found = check_html.prose_numbers(
        [
            "Glorot 10.2 %, He 99.8 %; ratio 0.85, about 1e-6; 72-93 % saturated; "
            "roughly 10 points better; 5 layers, 4,000 examples, 2,048 calls, version 0.1.0, "
            "N(0, 0.01^2), 1/4, digits 5-9."
        ]
    )
    assert [(n, pct) for n, _, pct in found] == [
        ("10.2", True),
        ("99.8", True),
        ("0.85", False),
        ("1e-6", False),
        ("72", True),
        ("93", True),
        ("10", False),  # points: the number must be printed, in any form
    ]


def test_a_prose_number_missing_from_the_output_is_reported(check_html):
    # The text of issue #18: the prose says 50.7 and 49.9 %, the run printed 50.8 and 42.6 %;
    # "roughly 10 points or more" where the run printed +8.7 and +13.2 points.
    html = page(
        "<p>The default run measured plain 23.9 / 50.7 / 88.8 % and 49.9 % (plain-32).</p>",
        "plain depth  5: train error 23.9%\nplain depth 17: train error 50.8%\n"
        "plain depth 49: train error 88.8%\nplain-32: train error  42.6%",
    )
    problems, unused = check_html.unmatched_prose_numbers(html)
    assert unused == []
    assert len(problems) == 2, problems
    assert problems[0].startswith("'50.7' is not in the page's output")
    assert "'49.9 %'" in problems[1]
    transfer = page(
        "<p>Pretrained features win (by roughly 10 points or more over scratch).</p>",
        "gain over scratch: +8.7 points (frozen, then fine-tuned), +13.2 points (at once)",
    )
    (problem,) = check_html.unmatched_prose_numbers(transfer)[0]
    assert "'10 points'" in problem
    # A percentage must be printed as a percentage, a decimal with the same value (not
    # merely rounding to it).
    problems, _ = check_html.unmatched_prose_numbers(
        page(
            "<p>Gain 0.85 and 0.9, error 42.6 %, 12.5 % and 100 %.</p>",
            "0.850 0.93 42.6% 12.5 100.0%",
        )
    )
    assert [p.split(" is ")[0] for p in problems] == ["'0.9'", "'12.5 %'"]


def test_numbers_in_the_output_or_allowed_pass(check_html):
    html = page(
        "<ul><li><p>He trains (checked: above 90 %); gain 0.85.</p></li></ul>"
        "<p>Greydanus 2020 reports 68 % with lr 0.05.</p>",
        "he: train accuracy 99.6% (checked: above 90%)\nmean gain 0.85",
    )
    allowed = {"reports 68 %": "the paper's figure", "lr 0.05": "hyper-parameter", "7.5 x": "?"}
    problems, unused = check_html.unmatched_prose_numbers(html, allowed)
    assert problems == []
    assert unused == ["7.5 x"]  # an entry that excuses nothing is reported
    problems, _ = check_html.unmatched_prose_numbers(html)
    assert len(problems) == 2 and "68 %" in problems[0] and "0.05" in problems[1]


def test_check_over_a_built_site(check_html, tmp_path):
    gallery = tmp_path / "auto_examples" / "01_basics"
    gallery.mkdir(parents=True)
    (tmp_path / "auto_examples" / "index.html").write_text(page("<p>0.5 %</p>", ""))
    (gallery / "sg_execution_times.html").write_text(page("<p>0.25 %</p>", ""))
    (gallery / "plot_a.html").write_text(page("<p>It reached 97.2 %.</p>", "97.2%"))
    (gallery / "plot_b.html").write_text(page("<p>It reached 97 % (lr 0.1).</p>", "97.2%"))
    allowed = tmp_path / "allowed.toml"
    allowed.write_text(
        '["01_basics/plot_b"]\n"lr 0.1" = "hyper-parameter"\n'
        '["01_basics/plot_gone"]\n"x 1.5" = "a page that no longer exists"\n'
    )
    problems, checked = check_html.check_prose_numbers(tmp_path, allowed)
    assert checked == 2
    assert len(problems) == 2, problems
    assert "plot_b.html: '97 %'" in problems[0] and "plot_gone" in problems[1]
    # A partial build (JDL_DOCS_ONLY) checks only the tutorials it executed.
    problems, checked = check_html.check_prose_numbers(tmp_path, allowed, only=r"plot_a\.py$")
    assert (problems, checked) == ([], 1)


def test_allow_list_names_existing_tutorials_with_a_reason_per_entry():
    allowed = tomllib.loads((DOCS / "prose_numbers.toml").read_text(encoding="utf-8"))
    for name, entries in allowed.items():
        script = EXAMPLES / f"{name}.py"
        assert script.exists(), f"docs/prose_numbers.toml: [{name!r}] is no tutorial"
        text = " ".join(script.read_text(encoding="utf-8").split())
        for phrase, reason in entries.items():
            assert isinstance(reason, str) and len(reason.split()) >= 2, (name, phrase)
            assert re.search(r"\d", phrase), (name, phrase)
            # The phrase is written in the tutorial's text (modulo line breaks and the
            # rst markup around words), so a reworded sentence cannot keep a stale entry.
            words = [re.escape(w) for w in phrase.split()]
            pattern = r"[\s#*`|-]+".join(words)
            assert re.search(pattern, text), f"{name}: {phrase!r} is not in {script.name}"
