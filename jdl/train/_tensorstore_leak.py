"""Keep Orbax's per-array ``KvStore.Spec(...).to_json()`` off TensorStore's leaking JSON path.

TensorStore 0.1.86 (and its sources to August 2026) converts JSON to Python with
``PyDict_SetItem(dict, key.release(), value.release())``: every key and value of every JSON
object it returns keeps one reference too many and is never freed. For each array it writes,
and for each OCDBT merge, Orbax's ``_build_ocdbt_kvstore_tspec`` resolves the plain local
``{"driver": "file", "path": ...}`` spec with ``ts.KvStore.Spec(spec).to_json()``, which
leaks its four strings (~5 KB per checkpoint of a small model, issue #19).

:func:`avoid_spec_to_json` gives Orbax's ``tensorstore_utils`` module a ``ts`` that is
TensorStore, except that ``ts.KvStore.Spec`` of such a plain file spec still builds (and so
validates) TensorStore's spec, but its ``to_json()`` is assembled from the spec's ``path``
(a string, which does not leak): the same JSON TensorStore returns for it. Every other spec,
and ``to_json`` with arguments, goes to TensorStore unchanged.
"""

from __future__ import annotations

from typing import Any

import tensorstore as ts


class _FileSpec:
    """``ts.KvStore.Spec`` of ``{"driver": "file", "path": ...}`` with a leak-free
    ``to_json()``; ``spec`` is TensorStore's own."""

    def __init__(self, spec: ts.KvStore.Spec) -> None:
        self.spec = spec

    def to_json(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return self.spec.to_json(*args, **kwargs)
        return {"driver": "file", "path": self.spec.path}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spec, name)

    def __repr__(self) -> str:
        return repr(self.spec)


def _plain_file(json_spec: Any) -> bool:
    return (
        type(json_spec) is dict
        and json_spec.keys() == {"driver", "path"}
        and json_spec["driver"] == "file"
        and type(json_spec["path"]) is str
    )


class _KvStore:
    """``ts.KvStore``, but ``Spec`` of a plain file spec is a :class:`_FileSpec`."""

    @staticmethod
    def Spec(json_spec: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (TensorStore's name)
        spec = ts.KvStore.Spec(json_spec, *args, **kwargs)
        return _FileSpec(spec) if not (args or kwargs) and _plain_file(json_spec) else spec

    @staticmethod
    def open(spec: Any, *args: Any, **kwargs: Any) -> Any:
        return ts.KvStore.open(spec.spec if isinstance(spec, _FileSpec) else spec, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(ts.KvStore, name)


class _TensorStore:
    """The ``tensorstore`` module, with :class:`_KvStore` for ``KvStore``."""

    KvStore = _KvStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(ts, name)


def avoid_spec_to_json() -> bool:
    """Give Orbax's ``tensorstore_utils`` the ``ts`` above; whether it was done (not for
    another Orbax layout, which is left as it is)."""
    try:
        from orbax.checkpoint._src.serialization import tensorstore_utils
    except ImportError:
        return False
    if getattr(tensorstore_utils, "ts", None) is not ts:
        return isinstance(getattr(tensorstore_utils, "ts", None), _TensorStore)
    tensorstore_utils.ts = _TensorStore()
    return True
