"""Evaluation and prediction batches on a device count that does not divide them.

An evaluation batch is only a chunk of the data: ``evaluate``, ``predict`` and ``fit``'s
validation round it up to a multiple of the devices and mask the padding, so their
defaults (256, ``max(batch_size, 256)``) work on any device count -- 6 devices here, in a
subprocess -- and give the one-device numbers. A training batch still has to divide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import optimizer

pytestmark = pytest.mark.multidevice

NUM_DEVICES = 6


def _fit(strategy):
    return jdl.fit(
        TinyMLP(batch_norm=True),
        blobs(240, seed=0),
        batch_size=48,  # a multiple of 6: the training batch defines the math
        loss="cross_entropy",
        optimizer=optimizer("momentum", 0.1),
        epochs=1,  # the crash came after the first epoch
        validation=blobs(70, seed=1),  # eval batch: the default max(48, 256) = 256
        strategy=strategy,
        verbose=0,
    )


def six_devices(out: str) -> None:
    """What the subprocess runs on 6 devices: defaults everywhere, and one device (jit)."""
    assert jax.device_count() == NUM_DEVICES, jax.devices()
    results = {}
    test = blobs(300, seed=2)  # 300 = 256 + 44: one full and one padded batch
    for strategy in (None, "pmap", "jit"):
        history = _fit(strategy)
        variables = history.variables
        results[str(strategy)] = {
            "val_loss": history.metrics["val_loss"],
            "val_accuracy": history.metrics["val_accuracy"],
            "evaluate": jdl.evaluate(TinyMLP(batch_norm=True), variables, test, strategy=strategy),
            "predict": jdl.predict(TinyMLP(batch_norm=True), variables, test.x, strategy=strategy)
            .astype(float)
            .tolist(),
        }
    Path(out).write_text(json.dumps(results))


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={NUM_DEVICES}"])
    return env


def test_fit_evaluate_predict_defaults_on_six_devices(tmp_path):
    out = tmp_path / "results.json"
    code = f"import test_uneven_devices as t; t.six_devices({str(out)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    ref = results["jit"]
    for strategy in ("None", "pmap"):
        got = results[strategy]
        np.testing.assert_allclose(got["val_loss"], ref["val_loss"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["val_accuracy"], ref["val_accuracy"], atol=1e-6)
        for key, value in ref["evaluate"].items():
            assert got["evaluate"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        np.testing.assert_allclose(got["predict"], ref["predict"], rtol=1e-4, atol=1e-5)
        assert np.shape(got["predict"]) == (300, 3)


@pytest.mark.parametrize("strategy", ["sharded", "pmap"])
def test_evaluate_and_predict_round_up_any_batch_size(strategy):
    """On 8 devices a batch size of 100 (or 3) is rounded up and masked: jit's numbers."""
    assert jax.device_count() == 8
    model = TinyMLP(batch_norm=True)
    data = blobs(205, seed=4)
    variables = model.init(jax.random.key(0), data.x[:1], train=False)
    want = jdl.evaluate(model, variables, data, batch_size=100, strategy="jit")
    want_out = jdl.predict(model, variables, data.x, batch_size=100, strategy="jit")
    for batch_size in (100, 3):
        got = jdl.evaluate(model, variables, data, batch_size=batch_size, strategy=strategy)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
        out = jdl.predict(model, variables, data.x, batch_size=batch_size, strategy=strategy)
        np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-6)


def test_training_batch_that_does_not_divide_is_still_refused():
    with pytest.raises(ValueError, match="multiple of 8; got 12"):
        jdl.fit(
            TinyMLP(),
            blobs(48),
            batch_size=12,
            loss="cross_entropy",
            optimizer=optimizer("sgd", 0.1),
            epochs=1,
            verbose=0,
        )
