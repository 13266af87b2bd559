"""TrainingMonitor: gradient_flow's per-layer numbers recorded while fit trains."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

import jdl
from jdl import nn
from jdl.analysis import MONITOR_STATS, TrainingMonitor, gradient_flow

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 8)).astype(np.float32)
Y = (X[:, :4].sum(axis=1) > 0).astype(np.int32) + 2 * (X[:, 4] > 0).astype(np.int32)
PROBE = {"x": X[:128], "y": Y[:128]}


def run(lr, steps=60, every=10, tx=None, model=None):
    model = model or nn.MLP(widths=(32, 32), num_outputs=4)
    monitor = TrainingMonitor(PROBE, "cross_entropy", every=every)
    history = jdl.fit(
        model, (X, Y), batch_size=40, steps=steps, loss="cross_entropy", verbose=0,
        optimizer=tx or optax.sgd(lr), log_every=every, callbacks=[monitor],
    )  # fmt: skip
    return monitor, history, model


@pytest.fixture(scope="module")
def healthy():
    return run(0.1)


def test_records_from_the_first_to_the_last_step(healthy):
    monitor, history, _ = healthy
    assert monitor.steps[0] == 0 and monitor.steps[-1] == history.steps[-1] == 60
    assert all(b - a >= 10 for a, b in zip(monitor.steps, monitor.steps[1:], strict=False))
    assert monitor.layers == ["Dense_0", "Dense_1", "head"]
    for stat in MONITOR_STATS:
        assert monitor.values[stat].shape == (len(monitor.steps), 3)
    assert monitor._compiled._cache_size() == 1  # one compilation for the whole run


def test_last_record_equals_gradient_flow_of_the_final_state(healthy):
    monitor, history, model = healthy
    flow = gradient_flow(model, history.variables, PROBE, "cross_entropy")
    last = {k: v[-1] for k, v in monitor.values.items()}
    for j, layer in enumerate(monitor.layers):
        report = flow[layer]
        assert last["grad_norm"][j] == pytest.approx(report.grad_norm, rel=1e-4)
        assert last["act_std"][j] == pytest.approx(report.activation_std, rel=1e-4)
        assert last["dead"][j] == pytest.approx(report.dead_fraction, abs=1e-6)
    assert monitor.loss[-1] == pytest.approx(flow.loss, rel=1e-5)


def test_update_ratio_is_the_optimisers_real_update(healthy):
    # Plain SGD: the update is -lr * gradient, so the ratio is lr * |g| / |params|.
    monitor, history, _ = healthy
    params = history.variables["params"]
    for j, layer in enumerate(monitor.layers):
        p_norm = np.sqrt(sum(float(np.sum(np.square(a))) for a in jax.tree.leaves(params[layer])))
        expected = 0.1 * monitor.values["grad_norm"][-1, j] / p_norm
        assert monitor.values["update_ratio"][-1, j] == pytest.approx(expected, rel=1e-4)


def test_alerts_name_the_dead_layer_after_a_too_high_learning_rate(healthy):
    assert not [a for a in healthy[0].alerts() if "dead" in a[2]]
    broken, _, _ = run(4.0)
    dead = [a for a in broken.alerts() if "dead" in a[2]]
    assert dead, broken.alerts()
    step, layer, _ = dead[0]
    assert step > 0 and layer in broken.layers


def test_json_plot_and_resume_state(healthy, tmp_path):
    monitor = healthy[0]
    monitor.save(tmp_path / "monitor.json")
    data = json.loads((tmp_path / "monitor.json").read_text())
    assert data["steps"] == monitor.steps and data["layers"] == monitor.layers
    fig = monitor.plot()
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    # ReLU does not saturate: that panel is left out.
    assert titles == ["gradient norm", "|update| / |params|", "activation std", "dead fraction"]
    restored = TrainingMonitor(PROBE, "cross_entropy", every=10)
    restored.load_state_dict(monitor.state_dict())
    for stat in MONITOR_STATS:
        np.testing.assert_array_equal(restored.values[stat], monitor.values[stat])


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"every": 0}, ValueError, "every"),
        ({"batch": {"x": X}}, KeyError, "missing"),
        ({"batch": (X, Y), "layers": ["nope"]}, KeyError, "Unknown layer"),
    ],
)
def test_bad_arguments(kwargs, error, words):
    kwargs = {"batch": PROBE, **kwargs}
    with pytest.raises(error, match=words):
        monitor = TrainingMonitor(kwargs.pop("batch"), "cross_entropy", **kwargs)
        jdl.fit(nn.MLP(widths=(4,), num_outputs=4), (X, Y), batch_size=40, steps=2,
                loss="cross_entropy", optimizer=optax.sgd(0.1), verbose=0,
                callbacks=[monitor])  # fmt: skip


def test_records_are_saved_with_the_history(healthy, tmp_path):
    monitor, history, _ = healthy
    assert history.records["monitor"]["steps"] == monitor.steps
    history.to_json(tmp_path / "history.json")
    loaded = jdl.train.History.from_json(tmp_path / "history.json")
    assert loaded.records["monitor"] == json.loads(json.dumps(monitor.to_dict()))
