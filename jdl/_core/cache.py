"""Where jdl caches what it downloads or prepares: one root, one rule for the environment.

``$XDG_CACHE_HOME/jdl`` when ``XDG_CACHE_HOME`` is an absolute path, else
``~/.cache/jdl``: the XDG base-directory specification says a relative path in
``XDG_CACHE_HOME`` is invalid and must be ignored. Each kind of cached thing has a folder
below that root (``datasets``, ``pretrained``) and an environment variable that overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """jdl's cache root: ``$XDG_CACHE_HOME/jdl`` (absolute paths only), else ``~/.cache/jdl``.

    Nothing is created here.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path("~/.cache").expanduser()
    return base / "jdl"


def cache_dir(name: str, env_var: str) -> Path:
    """The cache folder for one kind of thing: ``$env_var`` if set, else ``cache_root()/name``.

    Args:
      name: the folder below the root (``"datasets"``, ``"pretrained"``).
      env_var: the environment variable that overrides it (``"JDL_DATA_DIR"``); its value is
        made absolute, with ``~`` expanded.

    Returns:
      An absolute path; nothing is created here.
    """
    override = os.environ.get(env_var, "")
    if override:
        return Path(override).expanduser().absolute()
    return cache_root() / name
