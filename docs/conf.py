"""Sphinx configuration of jdl's documentation.

Build: ``nox -s docs`` (from scratch, warnings are errors, every tutorial executed, then
the HTML checked in headless Chromium). By hand: ``sphinx-build -W --keep-going -b html
docs docs/_build/html``.

Settings read from the environment:

``JDL_DOCS_INTERSPHINX``
    ``remote`` (default), ``cache`` or ``off``: where the inventories of the projects we
    link to come from; see ``docs/intersphinx_inventories.py``.
``JDL_DOCS_FULL``
    ``1`` asks tutorials for their full-size versions (longer runs, closer to the papers);
    the default is the small, fast version that CI builds.
``JDL_DOCS_ONLY``
    A regular expression: only the tutorials whose path matches it (``re.search``) are
    executed (sphinx-gallery's ``filename_pattern``); the others are built without output.
    For quick local builds, e.g. ``JDL_DOCS_ONLY=plot_initialisation``; unset (the default
    and CI) executes every tutorial. ``docs/check_html.py`` checks the prose numbers of the
    executed pages only when it is set.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS))

from intersphinx_inventories import intersphinx_mapping as _intersphinx_mapping  # noqa: E402

import jdl  # noqa: E402

# -- Project -------------------------------------------------------------------------------
project = "jdl"
author = "The jdl authors"
copyright = "2026, The jdl authors"  # noqa: A001
release = jdl.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    # Maths pre-rendered as MathML at build time (no MathJax, no CDN): docs/_ext.
    "jdl_mathml",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "jdl_autodoc",
]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
templates_path = ["_templates"] if (DOCS / "_templates").exists() else []
root_doc = "index"
default_role = "py:obj"

# Every reference to a jdl object must resolve: nitpicky mode is on, and only targets
# outside jdl (Python, NumPy, JAX, Flax, Optax, typing names in signatures) may stay
# unresolved — they are linked through intersphinx where its inventories are available.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!jdl(\.|$)).*")]

# -- autodoc / napoleon --------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "special-members": "__call__",
    "exclude-members": "__init__",
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as a field list, not duplicate attribute entries
napoleon_use_rtype = False
napoleon_preprocess_types = False

# -- intersphinx ---------------------------------------------------------------------------
intersphinx_mapping, _missing_inventories = _intersphinx_mapping()
intersphinx_timeout = 15
intersphinx_cache_limit = 7
if _missing_inventories:
    print(
        "jdl docs: no intersphinx inventory for "
        f"{', '.join(_missing_inventories)} (JDL_DOCS_INTERSPHINX="
        f"{os.environ.get('JDL_DOCS_INTERSPHINX', 'remote')}); references to them stay "
        "plain text."
    )

# -- sphinx-gallery ------------------------------------------------------------------------
sphinx_gallery_conf = {
    # examples/ is the gallery root; its numbered sub-folders are the sections.
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Execute every tutorial (plot_*.py) and the hand-written-loop example.
    "filename_pattern": os.environ.get("JDL_DOCS_ONLY")
    or re.escape(os.sep) + r"(plot_[^" + re.escape(os.sep) + r"]*|train_digits_mlp)\.py$",
    "ignore_pattern": r"(__init__|_helpers?|conftest)\.py$",
    # Sections in folder-name order (01_basics, 02_understanding, ...), pages by file name.
    "subsection_order": None,
    "within_subsection_order": "FileNameSortKey",
    # Any error in any tutorial fails the build (after all of them ran, so every failure
    # is reported at once).
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "expected_failing_examples": set(),
    "plot_gallery": "True",
    "run_stale_examples": False,
    "reset_modules": ("matplotlib", "jdl_gallery.reset_state"),
    "reset_modules_order": "before",
    "remove_config_comments": True,
    "download_all_examples": False,
    "min_reported_time": 1,
    "show_memory": False,
    # Tutorials run one after the other, in the Sphinx process (sphinx-gallery's parallel
    # mode has not been measured here).
    "parallel": False,
    # Link names used in the tutorials' code to the API reference.
    "doc_module": ("jdl",),
    "backreferences_dir": "gen_modules/backreferences",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "ignore_repr_types": r"matplotlib[\w.]*",
}

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_math_renderer = "mathml"
html_title = f"jdl {release}"
html_static_path = ["_static"]
html_css_files = ["jdl.css"]
html_show_sourcelink = True
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
