"""Downloads cut short by the server: a clear error, nothing left in the cache, retry works.

A local HTTP server on 127.0.0.1 announces the file's full ``Content-Length`` but sends only
part of it and closes the connection (what a dropped connection looks like to urllib, which
then returns the short body without complaint).
"""

from __future__ import annotations

import http.server
import threading

import pytest

from jdl import pretrained
from jdl.pretrained import hub

from .test_hub import entry


@pytest.fixture
def cutting_server(weights_file):
    """``(url, size)``: a server that sends ``send`` bytes of the file, then hangs up."""
    path, _ = weights_file
    body = path.read_bytes()
    state = {"send": len(body) // 2}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: state["send"]])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}", len(body), state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fraction", [0.5, 0.0, 0.99])
def test_a_download_cut_short_names_the_url_and_both_sizes(
    weights_file, cache, cutting_server, http_url, fraction
):
    path, digest = weights_file
    url, size, state = cutting_server
    state["send"] = int(size * fraction)
    with pytest.raises(pretrained.WeightFileError) as info:
        hub.download(entry(url, digest), cache=cache)
    message = str(info.value)
    assert not isinstance(info.value, pretrained.ChecksumError)  # found before any hashing
    assert repr(url) in message and "cut short" in message
    assert f"expected {size} bytes" in message and f"received {state['send']}" in message
    assert list(cache.iterdir()) == []  # no partial file, no temporary file, no record
    good = hub.download(entry(f"{http_url}/{path.name}", digest), cache=cache)
    assert good == cache / "mlp.safetensors" and good.read_bytes() == path.read_bytes()
    assert pretrained.load(good).report.complete


def test_a_cut_download_by_name_leaves_the_cache_empty(
    weights_file, cache, cutting_server, monkeypatch
):
    _, digest = weights_file
    url, size, _ = cutting_server
    monkeypatch.setitem(hub.REGISTRY, "test-mlp", entry("https://example.invalid/m", digest))
    with pytest.raises(pretrained.WeightFileError, match=f"expected {size} bytes"):
        pretrained.load("test-mlp", source=url, cache_dir=cache)
    assert list(cache.iterdir()) == []
