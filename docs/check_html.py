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

Exits non-zero, listing every problem, if anything is broken.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
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
)
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
