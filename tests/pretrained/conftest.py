"""Small hand-made models and weight files for the jdl.pretrained tests (no torch, no Keras)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import nn, pretrained
from jdl.data import from_arrays


@pytest.fixture
def tiny_resnet():
    """A 2-stage BasicBlock ResNet: conv1, bn1, layer1_0, layer2_0 (with downsample), fc."""
    return nn.ResNet(stage_sizes=(1, 1), num_outputs=3, width=4)


def torch_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """A torchvision-named state dict for ``tiny_resnet``, in PyTorch layouts (OIHW, (out, in))."""
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}

    def conv(name, o, i, k):
        sd[f"{name}.weight"] = rng.normal(size=(o, i, k, k)).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(size=c).astype(np.float32)
        sd[f"{name}.running_mean"] = rng.normal(size=c).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(7, np.int64)

    conv("conv1", 4, 3, 7)
    bn("bn1", 4)
    conv("layer1.0.conv1", 4, 4, 3)
    bn("layer1.0.bn1", 4)
    conv("layer1.0.conv2", 4, 4, 3)
    bn("layer1.0.bn2", 4)
    conv("layer2.0.conv1", 8, 4, 3)
    bn("layer2.0.bn1", 8)
    conv("layer2.0.conv2", 8, 8, 3)
    bn("layer2.0.bn2", 8)
    conv("layer2.0.downsample.0", 8, 4, 1)
    bn("layer2.0.downsample.1", 8)
    sd["fc.weight"] = rng.normal(size=(3, 8)).astype(np.float32)
    sd["fc.bias"] = rng.normal(size=3).astype(np.float32)
    return sd


@pytest.fixture
def state_dict():
    return torch_state_dict()


def arrays(x, y):
    """A random-access source over arrays: float32 inputs, int32 labels."""
    return from_arrays(np.asarray(x, np.float32), np.asarray(y, np.int32))


def random_variables(model, input_shape, seed=0):
    """Variables with ``model.init``'s structure, filled with numpy random numbers.

    ``jax.eval_shape`` costs nothing, whereas a real ``init`` compiles or dispatches every
    initialiser (tens of seconds for a ResNet on a busy 2-core machine).
    """
    rng = np.random.default_rng(seed)
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)), shapes
    )


# The hub tests: a weight file to download, an empty cache, a local HTTP server.


@pytest.fixture
def weights_file(tmp_path):
    """A jdl weight file outside the cache, and its SHA-256."""
    model = nn.MLP(widths=(8,), num_outputs=3)
    path = pretrained.save(
        tmp_path / "src" / "mlp.safetensors",
        model,
        random_variables(model, (1, 5)),
        input_shape=(1, 5),
    )
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def http_url(weights_file):
    """Serve the weight file's folder on 127.0.0.1 (an ephemeral port) for one test."""
    path, _ = weights_file
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
