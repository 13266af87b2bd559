"""Crafted pickles are refused, never run, and jdl's source never unpickles unsafely.

The payload's ``__reduce__`` makes unpickling call ``exec``, which writes a marker file: if
the marker appears, code from the file ran. Torch's ``.pth`` comes in two layouts, both
built here with plain :mod:`pickle`: a zip archive holding ``archive/data.pkl`` (torch >= 1.6)
and a raw pickle stream (the legacy format). The same files with torch installed are
tested in ``tests/interop/test_pickle_safety.py``.
"""

from __future__ import annotations

import ast
import pickle
import zipfile
from pathlib import Path

import pytest

from jdl import pretrained
from jdl.pretrained import _files


class _WritesMarker:
    """Unpickling this runs ``exec``, which creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def crafted_pth(path: Path, marker: Path, layout: str) -> Path:
    """A ``.pth`` whose state dict's value runs code when unpickled."""
    payload = pickle.dumps({"conv1.weight": _WritesMarker(marker)}, protocol=2)
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", payload)
            z.writestr("archive/version", "3\n")
            z.writestr("archive/byteorder", "little")
    else:
        path.write_bytes(payload)
    return path


def test_the_payload_is_live(tmp_path):
    """Control: plain pickle does run it (so the refusals below mean something)."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_WritesMarker(marker)))  # noqa: S301 (the point of the control)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".pkl"])
def test_crafted_pickle_is_refused_without_torch(tmp_path, monkeypatch, layout, suffix):
    monkeypatch.setattr(_files, "torch_available", lambda: False)
    marker = tmp_path / "marker"
    path = crafted_pth(tmp_path / f"evil{suffix}", marker, layout)
    for read in (pretrained.load, pretrained.from_torchvision, _files.read_torch_pickle):
        with pytest.raises(pretrained.WeightFileError) as info:
            read(path)
        message = str(info.value)
        assert repr(str(path)) in message and "weights_only=True" in message
        assert "torch is not installed" in message and "safetensors" in message
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".h5"])
def test_a_pickle_under_another_extension_is_refused_as_malformed(tmp_path, suffix):
    marker = tmp_path / "marker"
    path = crafted_pth(tmp_path / f"evil{suffix}", marker, "legacy")
    with pytest.raises(pretrained.WeightFileError, match="not a (valid|readable)") as info:
        pretrained.load(path)
    assert repr(str(path)) in str(info.value)
    assert not marker.exists()


# -- the source scan: no unpickling outside torch.load(weights_only=True) -------------------

_JDL = Path(pretrained.__file__).parents[1]
#: ``module.function`` calls that unpickle arbitrary objects.
_UNPICKLERS = {
    (m, f)
    for m in ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve")
    for f in ("load", "loads", "Unpickler", "open")
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
        for k in call.keywords
    )


def unsafe_calls(source: str) -> list[str]:
    """``"line: call"`` for each unpickling call that is not ``weights_only=True``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in {m for m, _ in _UNPICKLERS}:
            names = [a.name for a in node.names if (node.module, a.name) in _UNPICKLERS]
            found += [f"{node.lineno}: from {node.module} import {n}" for n in names]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        module, _, function = name.rpartition(".")
        if (module, function) in _UNPICKLERS:
            found.append(f"{node.lineno}: {name}")
        elif name == "torch.load" and not _keyword_is(node, "weights_only", True):
            found.append(f"{node.lineno}: torch.load without weights_only=True")
        elif name in ("np.load", "numpy.load") and _keyword_is(node, "allow_pickle", True):
            found.append(f"{node.lineno}: {name}(allow_pickle=True)")
    return found


def test_the_scan_finds_unsafe_calls():
    bad = (
        "import pickle, torch\nfrom pickle import loads\npickle.loads(b)\npickle.load(f)\n"
        "torch.load(p)\ntorch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\n"
    )
    assert len(unsafe_calls(bad)) == 6
    assert unsafe_calls("torch.load(p, map_location='cpu', weights_only=True)\n") == []


def test_jdl_never_unpickles_without_weights_only():
    files = sorted(_JDL.rglob("*.py"))
    assert len(files) > 20 and (_JDL / "pretrained" / "_files.py") in files
    found = {
        str(f.relative_to(_JDL.parent)): calls
        for f in files
        if (calls := unsafe_calls(f.read_text(encoding="utf8")))
    }
    assert found == {}, f"unsafe unpickling in jdl/: {found}"
    assert "weights_only=True" in (_JDL / "pretrained" / "_files.py").read_text()
