"""Hub cache safety (issue #19): bare cache file names, and full SHA-256s trusted on first use."""

from __future__ import annotations

import hashlib

import pytest

from jdl import pretrained
from jdl.pretrained import hub

from .test_hub import entry

_BAD_NAMES = [
    "../outside.safetensors",
    "sub/../../outside.safetensors",
    "sub/inside.safetensors",
    "..",
    ".",
    "",
    "..\\outside.safetensors",
    "nul\0byte",
]


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", [*_BAD_NAMES, "/abs/outside.safetensors"])
def test_entries_with_a_path_as_file_name_are_refused(name):
    with pytest.raises(ValueError, match="bare file name") as info:
        hub.HubEntry(name="x", url="https://a/b.safetensors", format="jdl", sha256="0" * 64,
                     filename=name)  # fmt: skip
    assert repr(name) in str(info.value) and "'x'" in str(info.value)


@pytest.mark.parametrize("url", ["https://a/", "https://a/dir/..", "file:///"])
def test_urls_without_a_file_name_need_one(url):
    with pytest.raises(ValueError, match="bare file name"):
        hub.HubEntry(name="x", url=url, format="jdl", sha256="0" * 64)


@pytest.mark.parametrize("name", ["../outside.safetensors", "OUTSIDE"])
def test_a_bad_name_is_refused_again_when_registered_and_used(weights_file, tmp_path, name):
    path, digest = weights_file
    bad = entry(path.as_uri(), digest)
    if name == "OUTSIDE":
        name = str(tmp_path / "outside.safetensors")  # an absolute path
    object.__setattr__(bad, "filename", name)  # what __post_init__ would have refused
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="bare file name"):
        hub.register(bad)
    assert "test-mlp" not in hub.REGISTRY
    with pytest.raises(ValueError, match="bare file name"):
        hub.download(bad, cache=tmp_path / "cache")
    assert _tree(tmp_path) == before  # nothing written, not even the cache folder


def _record(path):
    return path.with_name(path.name + ".sha256")


@pytest.fixture(params=["sha256-prefix", "md5"])
def weak_entry(request, weights_file):
    path, digest = weights_file
    if request.param == "md5":
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        return hub.HubEntry(name="test-mlp", url=path.as_uri(), format="jdl", md5=md5,
                            filename="mlp.safetensors")  # fmt: skip
    return entry(path.as_uri(), digest[:8])


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_weak_checksums_record_the_full_sha256_and_catch_tampering(weak_entry, weights_file, cache):
    path, digest = weights_file
    got = hub.download(weak_entry, cache=cache)
    assert _record(got).read_text() == f"{digest}  mlp.safetensors\n"
    assert _tree(cache) == ["mlp.safetensors", "mlp.safetensors.sha256"]  # no temporary file
    assert hub.download(weak_entry, cache=cache) == got  # the record matches: reused
    _flip_one_byte(got)
    tampered = hashlib.sha256(got.read_bytes()).hexdigest()
    with pytest.raises(pretrained.ChecksumError) as info:
        hub.download(weak_entry, cache=cache)
    message = str(info.value)
    assert str(got) in message and f"expected sha256 {digest}" in message
    assert f"found sha256 {tampered}" in message and "first verified" in message
    assert hashlib.sha256(got.read_bytes()).hexdigest() == tampered  # left for inspection


def test_the_record_wins_even_where_the_weak_check_passes(weak_entry, cache, monkeypatch):
    got = hub.download(weak_entry, cache=cache)
    _flip_one_byte(got)
    monkeypatch.setattr(hub, "_matches", lambda *a: True)  # a crafted 32-bit/MD5 collision
    with pytest.raises(pretrained.ChecksumError, match="changed since it was first verified"):
        hub.download(weak_entry, cache=cache)


def test_a_new_download_must_match_the_record(
    weak_entry, weights_file, cache, tmp_path, monkeypatch
):
    got = hub.download(weak_entry, cache=cache)
    got.unlink()  # the record stays
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"a different file passing the weak check")
    monkeypatch.setattr(hub, "_matches", lambda *a: True)
    with pytest.raises(pretrained.ChecksumError, match="not the file first verified"):
        hub.download(weak_entry, source=other, cache=cache)
    assert _tree(cache) == ["mlp.safetensors.sha256"]  # the download was discarded
    monkeypatch.undo()
    assert hub.download(weak_entry, cache=cache).read_bytes() == weights_file[0].read_bytes()


def test_load_by_name_checks_the_record(weights_file, cache, http_url, monkeypatch):
    path, digest = weights_file
    monkeypatch.setitem(hub.REGISTRY, "test-mlp", entry(f"{http_url}/{path.name}", digest[:8]))
    assert pretrained.load("test-mlp", cache_dir=cache).report.complete
    assert _record(cache / "mlp.safetensors").read_text().split()[0] == digest
    _flip_one_byte(cache / "mlp.safetensors")
    with pytest.raises(pretrained.ChecksumError, match=f"expected sha256 {digest}"):
        pretrained.load("test-mlp", cache_dir=cache)


def test_files_cached_before_records_existed_get_one_without_a_download(
    weak_entry, weights_file, cache, monkeypatch
):
    cache.mkdir()
    (cache / "mlp.safetensors").write_bytes(weights_file[0].read_bytes())
    monkeypatch.setattr(hub, "_fetch", lambda *a: pytest.fail("a verified cache is reused"))
    hub.download(weak_entry, cache=cache)
    assert _record(cache / "mlp.safetensors").read_text().split()[0] == weights_file[1]


def test_full_sha256_entries_need_no_record(weights_file, cache):
    path, digest = weights_file
    hub.download(entry(path.as_uri(), digest), cache=cache)
    assert _tree(cache) == ["mlp.safetensors"]


def test_a_malformed_record_is_an_error(weak_entry, cache):
    got = hub.download(weak_entry, cache=cache)
    _record(got).write_text("not a hash\n")
    with pytest.raises(pretrained.ChecksumError, match="64 hex digits"):
        hub.download(weak_entry, cache=cache)
