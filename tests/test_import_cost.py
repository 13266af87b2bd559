"""Importing jdl and its everyday names leaves the heavy optional dependencies unimported
(issue #13): TensorFlow Datasets, Grain, Orbax, TensorStore, Matplotlib, h5py and
tensorboardX are imported by the functions that use them, on first use.

Each check runs in a fresh interpreter, so what other tests imported does not count. The
functions that do use them still work (tests/data, tests/train/test_checkpoint_*.py); here a
first use of each is checked to import its dependency, so a test that could not fail (a
module renamed, a list mistyped) is ruled out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from jdl._core.lazy import lazy_exports

#: Imported by jdl only when a function needs them.
HEAVY = (
    "tensorflow_datasets",
    "tensorflow",
    "grain",
    "orbax",
    "tensorstore",
    "matplotlib",
    "h5py",
    "tensorboardX",
)

#: A script's first lines: the names a training script touches before it needs any data.
FIRST_USE = (
    "import jdl; jdl.fit; jdl.evaluate; jdl.predict; jdl.nn.MLP; jdl.losses; jdl.metrics; "
    "jdl.train.save_state; jdl.data.as_source; jdl.data.batches; jdl.data.load"
)


def _imported_after(statement: str) -> dict[str, bool]:
    """Which of :data:`HEAVY` a fresh interpreter holds after running ``statement``."""
    script = (
        f"{statement}\nimport json, sys\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=300
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_first_use_imports_none_of_the_heavy_modules():
    imported = _imported_after(FIRST_USE)
    assert not any(imported.values()), f"imported by {FIRST_USE!r}: " + ", ".join(
        name for name, loaded in imported.items() if loaded
    )


def test_import_jdl_alone_imports_no_jax():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, jdl; print('jax' in sys.modules)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("statement", "module"),
    [
        ("import jdl; jdl.data.load('iris')", "tensorflow_datasets"),
        ("import jdl, numpy as np; next(jdl.data.batches([{'x': np.zeros(2)}] * 4, 2))", "grain"),
        (
            "import tempfile, jax, optax, jdl\n"
            "state = jdl.train.create_state(jdl.nn.MLP(widths=(2,), num_outputs=1),"
            " optax.sgd(0.1), jax.numpy.zeros((1, 3)))\n"
            "jdl.train.save_state(tempfile.mkdtemp(), state)",
            "orbax",
        ),
    ],
    ids=["load", "batches", "save_state"],
)
def test_the_function_that_needs_a_heavy_module_imports_it(statement, module):
    assert _imported_after(statement)[module], f"{statement!r} did not import {module}"


def _package(name: str, **defined) -> types.ModuleType:
    package = types.ModuleType(name)
    vars(package).update(defined)
    return package


def test_lazy_exports_imports_a_name_once_and_names_the_ones_it_has(monkeypatch):
    package = _package("jdl_lazy_probe", __version__="1")
    monkeypatch.setitem(sys.modules, "jdl_lazy_probe", package)
    where = {"json_like": "jdl_lazy_probe.sub", "sub": "jdl_lazy_probe.sub"}
    sub = _package("jdl_lazy_probe.sub", json_like=json)
    monkeypatch.setitem(sys.modules, "jdl_lazy_probe.sub", sub)
    getattr_, dir_ = lazy_exports("jdl_lazy_probe", where, ["json_like", "sub", "__version__"])
    assert getattr_("json_like") is json
    assert getattr_("sub") is sub  # the submodule itself
    assert vars(package)["json_like"] is json  # stored: the next lookup is a plain read
    assert {"json_like", "sub", "__version__"} <= set(dir_())
    with pytest.raises(AttributeError, match=r"no attribute 'nope'; expected one of \['json_like'"):
        getattr_("nope")


@pytest.mark.parametrize(
    ("where", "public", "message"),
    [
        ({"a": "jdl_lazy_probe.m"}, [], r"not in __all__: \['a'\]"),
        ({}, ["b"], r"neither defined nor in the table: \['b'\]"),
        ({"a": "jdl_lazy_probe.m"}, ["a", "a"], r"1 duplicate"),
        ({"a": "elsewhere.m"}, ["a"], r"must be inside it, got \['elsewhere.m'\]"),
    ],
)
def test_lazy_exports_refuses_a_table_that_disagrees_with_all(monkeypatch, where, public, message):
    monkeypatch.setitem(sys.modules, "jdl_lazy_probe", types.ModuleType("jdl_lazy_probe"))
    with pytest.raises(ValueError, match=message):
        lazy_exports("jdl_lazy_probe", where, public)


def test_lazy_exports_refuses_a_name_that_a_submodule_would_replace(monkeypatch, tmp_path):
    (tmp_path / "summary.py").write_text("def summary():\n    pass\n")
    package = types.ModuleType("jdl_lazy_probe")
    package.__path__ = [str(tmp_path)]
    monkeypatch.setitem(sys.modules, "jdl_lazy_probe", package)
    with pytest.raises(ValueError, match=r"\['summary'\] name submodules too"):
        lazy_exports("jdl_lazy_probe", {"summary": "jdl_lazy_probe.other"}, ["summary"])
    # The submodule itself may be a lazy name (as ``jdl.train`` is in ``jdl``).
    monkeypatch.syspath_prepend(str(tmp_path.parent))  # leave no module imported behind:
    monkeypatch.delitem(sys.modules, "jdl_lazy_probe.summary", raising=False)
    getattr_, _ = lazy_exports("jdl_lazy_probe", {"summary": "jdl_lazy_probe.summary"}, ["summary"])
    assert getattr_("summary").summary.__name__ == "summary"
    sys.modules.pop("jdl_lazy_probe.summary")
