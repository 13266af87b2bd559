"""Check the built HTML: no broken internal links or images, and pages render in Chromium.

Usage: ``python docs/check_html.py docs/_build/html [--screenshots DIR]`` (``nox -s docs``
runs it after the build).

1. Every ``href``/``src`` of every page that points inside the site (not ``http(s):``,
   ``mailto:``, ...) must name an existing file, and a ``#fragment`` on a link to a page
   must name an ``id`` on that page. Every ``<img>`` must be a non-empty image file.
2. A few pages are opened in headless Chromium (Debian's ``chromium`` package): the DOM
   after JavaScript ran must contain what the page is about — for the search page, the
   results of a query, proving that the search index loads — and a screenshot of each is
   written and checked to be a non-blank PNG.
3. Numbers in tutorial prose agree with the page's own output (:func:`check_prose_numbers`):
   on every executed gallery page, each percentage, decimal or power of ten in the text
   (paragraphs, list items, table rows; not code, math, literal blocks or outputs) must
   appear in the page's output blocks, or be listed with a reason in
   ``docs/prose_numbers.toml`` (hyper-parameters, a paper's figures, recorded full-size
   runs). With ``JDL_DOCS_ONLY`` set (a build that executed only some tutorials), only
   the pages of the tutorials it selects are checked.

Exits non-zero, listing every problem, if anything is broken.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: (page, query string, text that must be in the rendered DOM)
BROWSER_PAGES = (
    ("index.html", "", "jdl"),
    ("auto_examples/index.html", "", "sphx-glr-thumbcontainer"),
    ("auto_examples/01_basics/plot_single_layer.html", "", "Takeaway"),
    ("api/train.html", "", 'id="jdl.train.fit"'),
    ("search.html", "?q=parallelize", "jdl.train.parallelize"),
    # Maths is MathML rendered at build time (docs/_ext/jdl_mathml.py), never raw LaTeX.
    ("auto_examples/01_basics/plot_backpropagation.html", "", "<math"),
)
#: Text that must not be in any page's prose: LaTeX left for a script to typeset.
RAW_LATEX = ("\\(", "\\)", "\\[", "\\]", "$$", "\\begin{", "\\frac{")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"<svg", b"<?xml", b"RIFF")


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None and not (tag == "a" and key == "src"):
                self.links.append((tag, key, attrs[key]))


def _parse(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8", errors="replace"))
    return collector


def check_links(root: Path) -> tuple[list[str], int, int]:
    """Problems found, number of pages, number of internal links checked."""
    problems, parsed, checked = [], {}, 0
    pages = sorted(root.rglob("*.html"))
    for page in pages:
        parsed[page] = _parse(page)
    for page in pages:
        for tag, attr, value in parsed[page].links:
            url = urlsplit(value)
            if url.scheme or value.startswith("//") or value.startswith("data:"):
                continue  # external or inline: not this check's business
            checked += 1
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            where = f"{page.relative_to(root)}: <{tag} {attr}={value!r}>"
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where} -> missing {target}")
                continue
            if root.resolve() not in target.resolve().parents and target.resolve() != root:
                problems.append(f"{where} -> points outside the site")
                continue
            if tag == "img":
                head = target.read_bytes()[:8]
                if target.stat().st_size == 0 or not head.startswith(IMAGE_MAGIC):
                    problems.append(f"{where} -> not an image ({target.stat().st_size} bytes)")
            if url.fragment and target.suffix == ".html":
                ids = parsed.get(target) or _parse(target)
                if unquote(url.fragment) not in ids.ids:
                    problems.append(f"{where} -> no id {url.fragment!r} in {target.name}")
    return problems, len(pages), checked


#: The allow-list of prose numbers that are not results of the page's run.
PROSE_NUMBERS_FILE = Path(__file__).resolve().with_name("prose_numbers.toml")
#: A measured-looking number: a percentage or a number of (percentage) points (or a range
#: of them, "72-93 %"), a decimal ("0.85", "1,437.5") or a power of ten ("1e-6"). Other
#: integers are not checked, nor a number raised to a power ("0.01^2").
PROSE_NUMBER = re.compile(
    r"(?<![\w.,^/])(?:"
    r"(?P<pct>\d[\d,]*(?:\.\d+)?(?:\s*[-\u2013]\s*\d[\d,]*(?:\.\d+)?)?)"
    r"\s*(?P<unit>%|(?:percentage\s+)?points\b)"
    r"|(?P<num>\d[\d,]*\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+)(?![\w.^]*\d)"
    r")"
)
_OUTPUT_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?P<pct>\s*%)?")
#: Block elements: each starts a new piece of prose. Table cells are not, so that a table
#: row reads as one line ("plain 1.8 % 11.2 % 81.9 %").
_BLOCKS = set(
    "p li tr dt dd h1 h2 h3 h4 h5 h6 div table ul ol dl blockquote section figure figcaption "
    "caption".split()
)
#: Elements whose text is not prose: code, literal blocks, math, scripts.
_NOT_PROSE_TAGS = {"pre", "code", "script", "style", "kbd", "samp", "head", "nav"}
#: Classes whose element's text is not prose (math, sphinx-gallery's timing and footer,
#: permalink anchors).
_NOT_PROSE_CLASSES = set(
    "math sphx-glr-timing sphx-glr-footer sphx-glr-signature headerlink "
    "sphx-glr-download-link-note sphx-glr-script-out output_result".split()
)
_VOID = set("area base br col embed hr img input link meta source track wbr".split())


class _GalleryPage(html.parser.HTMLParser):
    """Splits the main article of a sphinx-gallery page into prose and output text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skips prose, is output)
        self.prose: list[str] = []
        self.output: list[str] = []
        self._piece: list[str] = []
        self._in_main = 0

    def _flush(self):
        text = " ".join("".join(self._piece).split())
        if text:
            self.prose.append(text)
        self._piece = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        main = tag == "article" and attrs.get("role") == "main"
        self._in_main += main
        skip = tag in _NOT_PROSE_TAGS or bool(classes & _NOT_PROSE_CLASSES)
        # Printed output, and the HTML repr of a cell's last value (sphinx-gallery's
        # "output_result" block).
        output = "output_result" in classes or any(
            c.startswith("sphx-glr-script-out") for c in classes
        )
        if tag in _BLOCKS and not self._in_row():
            self._flush()
        elif tag in _BLOCKS or tag in ("td", "th"):
            self._piece.append(" ")
        self.stack.append((tag, skip, output))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack:
            open_tag = self.stack.pop()[0]
            if open_tag == "article" and self._in_main:
                self._in_main -= 1
            if open_tag == tag:
                break
        if tag in _BLOCKS and not self._in_row():
            self._flush()
        elif tag in _BLOCKS or tag in ("td", "th"):
            self._piece.append(" ")

    def _in_row(self) -> bool:
        """Inside a table row, whose cells (and their paragraphs) make one piece."""
        return any(tag == "tr" for tag, _, _ in self.stack)

    def handle_data(self, data):
        if not self._in_main:
            return
        if any(output for _, _, output in self.stack):
            self.output.append(data)
        elif not any(skip for _, skip, _ in self.stack):
            self._piece.append(data)

    def close(self):
        super().close()
        self._flush()


def parse_gallery_page(text: str) -> tuple[list[str], str]:
    """The prose pieces (whitespace-normalised) and the output text of a gallery page."""
    page = _GalleryPage()
    page.feed(text)
    page.close()
    return page.prose, "\n".join(page.output)


def _numbers(token: str) -> list[str]:
    return [n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", token)]


def prose_numbers(prose: list[str]) -> list[tuple[str, str, bool]]:
    """``(number, the prose piece it is in, whether it is a percentage)`` for every
    measured-looking number of the prose (see :data:`PROSE_NUMBER`); a range of percentages
    gives both ends."""
    found = []
    for piece in prose:
        for match in PROSE_NUMBER.finditer(piece):
            token = match.group("pct") or match.group("num")
            found += [(n, piece, match.group("unit") == "%") for n in _numbers(token)]
    return found


def unmatched_prose_numbers(
    text: str, allowed: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Check one gallery page: ``(problems, allow-list entries that matched nothing)``.

    Every measured-looking number of the prose must appear in the page's output blocks
    with the same value ("0.85" matches "0.850", not "0.853"; a percentage there as a
    percentage), unless it lies inside one of the phrases of ``allowed`` (phrase ->
    reason) in the same prose piece.
    """
    prose, output = parse_gallery_page(text)
    in_output = {
        (float(m.group().split("%")[0].strip().replace(",", "")), bool(m.group("pct")))
        for m in _OUTPUT_NUMBER.finditer(output)
    }
    in_output_any = {n for n, _ in in_output}
    allowed = allowed or {}
    used: set[str] = set()
    problems = []
    for piece in prose:
        spans = []
        for phrase in allowed:
            start = piece.find(phrase)
            while start >= 0:
                spans.append((start, start + len(phrase)))
                used.add(phrase)
                start = piece.find(phrase, start + 1)
        for match in PROSE_NUMBER.finditer(piece):
            if any(a <= match.start() and match.end() <= b for a, b in spans):
                continue
            pct = match.group("unit") == "%"  # points: the number, printed in any form
            token = match.group("pct") or match.group("num")
            for number in map(float, _numbers(token)):
                if (number, True) in in_output if pct else number in in_output_any:
                    continue
                problems.append(
                    f"{match.group().strip()!r} is not in the page's output: "
                    f"...{piece[max(0, match.start() - 60) : match.end() + 30]}..."
                )
                break
    return problems, sorted(set(allowed) - used)


def check_prose_numbers(
    root: Path, allowed_file: Path = PROSE_NUMBERS_FILE, only: str | None = None
) -> tuple[list[str], int]:
    """Problems and the number of gallery pages checked (see :func:`unmatched_prose_numbers`).

    ``allowed_file`` maps a page (``01_basics/plot_x``) to ``{phrase: reason}``; an entry
    for a missing page or a phrase that allows nothing on its page is a problem too, so the
    list cannot outlive the text it excuses. ``only`` (a regular expression on the
    tutorial's source path, as ``JDL_DOCS_ONLY``) limits the check to those pages.
    """
    allowed = tomllib.loads(allowed_file.read_text(encoding="utf-8")) if allowed_file else {}
    gallery = root / "auto_examples"
    problems, checked, seen = [], 0, set()
    for page in sorted(gallery.glob("*/*.html")) + sorted(gallery.glob("*.html")):
        name = page.relative_to(gallery).with_suffix("").as_posix()
        source = f"examples/{name}.py"
        if page.stem == "index" or page.stem.startswith("sg_"):
            continue  # sphinx-gallery's own pages, not tutorials
        seen.add(name)
        if only and not re.search(only, os.sep.join(source.split("/"))):
            continue
        checked += 1
        entries = allowed.get(name, {})
        found, unused = unmatched_prose_numbers(page.read_text(encoding="utf-8"), entries)
        problems += [f"{page.relative_to(root)}: {p}" for p in found]
        problems += [
            f"{allowed_file.name}: [{name!r}] {phrase!r} matches no prose on its page"
            for phrase in unused
        ]
    if only is None:
        problems += [
            f"{allowed_file.name}: [{name!r}] names no gallery page" for name in set(allowed) - seen
        ]
    return problems, checked


class _TextOutsideCode(html.parser.HTMLParser):
    """The text of a page outside ``<pre>``, ``<code>``, ``<script>``, ``<style>``, and
    whether it loads MathJax."""

    SKIP = ("pre", "code", "script", "style", "textarea")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.text: list[str] = []
        self.mathjax = False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1
        if tag == "script" and "mathjax" in (dict(attrs).get("src") or "").lower():
            self.mathjax = True

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


def check_maths(root: Path) -> tuple[list[str], int]:
    """No page shows raw LaTeX or loads MathJax; returns the problems and the number of
    pages holding MathML."""
    problems, with_math = [], 0
    for page in sorted(root.rglob("*.html")):
        source = page.read_text(errors="replace")
        with_math += "<math" in source
        parser = _TextOutsideCode()
        parser.feed(source)
        text = "".join(parser.text)
        where = page.relative_to(root)
        if parser.mathjax:
            problems.append(f"{where}: loads MathJax (maths must be rendered at build time)")
        for raw in RAW_LATEX:
            if raw in text:
                at = text.index(raw)
                problems.append(
                    f"{where}: raw LaTeX {raw!r} in the text: {text[at - 30 : at + 30]!r}"
                )
                break
    return problems, with_math


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(binary: str, profile: str, *args: str, timeout: float = 120) -> str:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def png_is_blank(path: Path) -> bool:
    """Whether a PNG (as Chromium writes it: 8-bit RGB/RGBA) has a single colour."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG"):
        return True
    pos, idat, width, channels = 8, b"", 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
            channels = {2: 3, 6: 4}.get(chunk[9], 4)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    # Filtered scanlines: with a single colour every row after the first is all zeros
    # (filter "up") or identical; count distinct raw bytes outside the filter byte.
    distinct = {raw[i : i + stride][1:] for i in range(0, len(raw), stride * 37)}
    values = set().union(*(set(row) for row in distinct))
    return len(values) <= 2


def check_in_browser(root: Path, screenshots: Path) -> list[str]:
    binary = find_chromium()
    if binary is None:
        return [
            "Chromium not found: install Debian's package (apt-get install -y chromium); "
            "nox -s docs does this when run as root"
        ]
    problems = []
    screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jdl-chromium-") as profile:
        for page, query, expected in BROWSER_PAGES:
            path = root / page
            if not path.exists():
                problems.append(f"{page}: not built")
                continue
            url = path.resolve().as_uri() + query
            try:
                dom = _chromium(binary, profile, "--dump-dom", url)
            except Exception as err:
                problems.append(f"{page}: {err}")
                continue
            if expected not in dom:
                problems.append(f"{page}{query}: rendered DOM lacks {expected!r}")
            if "<math" in dom and any(raw in dom for raw in ("\\(", "\\[")):
                problems.append(f"{page}{query}: rendered DOM holds raw LaTeX next to MathML")
            shot = screenshots / (page.replace("/", "_").replace(".html", ".png"))
            try:
                _chromium(binary, profile, f"--screenshot={shot}", "--window-size=1280,1600", url)
            except Exception as err:
                problems.append(f"{page}: screenshot failed: {err}")
                continue
            if not shot.exists() or png_is_blank(shot):
                problems.append(f"{page}: screenshot {shot} is missing or blank")
            else:
                print(f"rendered {page}{query} in Chromium -> {shot}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--no-browser", action="store_true", help="only check the files")
    args = parser.parse_args(argv)
    root = args.html_dir
    if not (root / "index.html").exists():
        print(f"{root} holds no built site (no index.html)", file=sys.stderr)
        return 2
    problems, pages, links = check_links(root)
    print(f"checked {links} internal links and images on {pages} pages")
    only = os.environ.get("JDL_DOCS_ONLY") or None
    prose_problems, gallery_pages = check_prose_numbers(root, only=only)
    problems += prose_problems
    print(
        f"checked the prose numbers of {gallery_pages} gallery pages against their output"
        + (f" (JDL_DOCS_ONLY={only!r})" if only else "")
    )
    math_problems, math_pages = check_maths(root)
    problems += math_problems
    print(f"checked every page for raw LaTeX and MathJax; {math_pages} pages hold MathML")
    if not args.no_browser:
        shots = args.screenshots or root.parent / "screenshots"
        problems += check_in_browser(root, shots)
    for problem in problems:
        print("BROKEN:", problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the built docs", file=sys.stderr)
        return 1
    print("the built docs have no broken links or images and render in Chromium")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C.UTF-8")
    sys.exit(main())
