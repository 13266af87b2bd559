"""``jdl.analysis.diagnose`` names the right cause on the classic failures (REFERENCES.md
"Iris learning rates", the seed talk) and raises no false alarm on a healthy model."""

from __future__ import annotations

import json
import warnings

import matplotlib
import numpy as np
import optax
import pytest

import jdl
from jdl.analysis import STAGES, Diagnosis, Finding, diagnose

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def raw(iris) -> dict[str, np.ndarray]:
    t = iris["train"]
    return {"x": t["x"].astype(np.float32), "y": t["y"].astype(np.int32)}


@pytest.fixture(scope="module")
def std(raw) -> dict[str, np.ndarray]:
    x = raw["x"]
    return {"x": (x - x.mean(0)) / x.std(0), "y": raw["y"]}


def mlp(**kwargs) -> jdl.nn.MLP:
    """The talk's Dense-Dense-softmax Iris MLP (ReLU, logits out)."""
    return jdl.nn.MLP(**{"widths": (16,), "num_outputs": 3, **kwargs})


def problems(d: Diagnosis) -> set[str]:
    return {f.check for f in d.problems}


@pytest.fixture(scope="module")
def healthy(std) -> Diagnosis:
    return diagnose(mlp(), std, optimizer=("adam", 1e-2))


def test_lr_too_high_kills_relus(raw):
    d = diagnose(mlp(), raw, optimizer=("sgd", 2.0), overfit_steps=100)
    top = d.top
    assert top.check == "dead_after_training" and top.severity == "error"
    assert "100% of the ReLU units in Dense_0" in top.verdict and "too high" in top.verdict
    suggestion = d.details["lr_find"].suggestion
    assert suggestion < 0.5 and f"~{suggestion:.2g} (lr_find)" in top.fix
    assert not problems(d) & {"labels", "output_loss", "saturation", "vanishing_gradients"}


def test_lr_too_low(raw):
    d = diagnose(mlp(), raw, optimizer="sgd", learning_rate=1e-8, overfit_steps=100)
    assert d.top.check == "learning_rate" and "too low" in d.top.verdict
    assert f"{d.details['lr_find'].suggestion:.2g}" in d.top.fix
    assert "dead_after_training" not in d and not problems(d) & {"labels", "output_loss"}


def test_deep_sigmoid_vanishes(std):
    model = mlp(widths=(16,) * 24, activation="sigmoid")
    d = diagnose(model, std, optimizer=("sgd", 0.1), stages=("data", "init", "depth"))
    assert d.top.check == "vanishing_gradients" and "vanish" in d.top.verdict
    assert d["vanishing_gradients"].evidence["min_grad_ratio"] < 1e-3
    assert not problems(d) & {"labels", "output_loss", "saturation", "dead_units"}


def test_normal_init_tanh_saturates(raw):
    model = mlp(widths=(64, 64), activation="tanh", kernel_init=1.0)
    d = diagnose(model, raw, optimizer=("adam", 1e-2), stages=("data", "init"))
    assert d.top.check == "saturation" and "tanh" in d.top.verdict
    assert d.top.evidence["max_saturated_fraction"] > 0.5
    assert not problems(d) & {"labels", "output_loss", "vanishing_gradients", "dead_units"}


def test_softmax_output_with_logits_loss(std):
    d = diagnose(mlp(output_activation="softmax"), std, optimizer=("adam", 1e-2), overfit_steps=100)
    assert d.top.check == "output_loss" and "mismatch" in d.top.verdict
    assert d.top.evidence["rows_sum_to_1"] is True and "output activation" in d.top.fix
    assert not problems(d) & {"labels", "saturation", "dead_after_training"}


def test_labels_do_not_fit_the_outputs(std):
    d = diagnose(mlp(), {"x": std["x"], "y": np.arange(len(std["x"])) % 10})
    assert d.top.check == "labels" and d.top.severity == "error"
    assert "num_outputs=10" in d.top.fix and "from 0 to 9" in d.top.verdict
    assert len(d.findings) == 1 and set(d.skipped) == set(STAGES) - {"data"}
    assert not d.healthy


def test_deep_plain_net_without_skips(std):
    plain = jdl.nn.MLP(widths=(16,) * 56, num_outputs=3, batch_norm=True)
    d = diagnose(plain, std, stages=("init", "depth"), batch_size=64)
    assert d.top.check == "depth_without_skips" and "skip" in d.top.fix
    assert d.top.evidence["first_layer_grad_ratio"] > 10
    assert "exploding_gradients" not in d  # the depth is the cause, named once
    residual = jdl.nn.MLP(widths=(16,) * 56, num_outputs=3, batch_norm=True, residual=True)
    r = diagnose(residual, std, stages=("init", "depth"), batch_size=64)
    assert "depth_without_skips" not in problems(r) and r["signal_propagation"].severity == "info"


def test_healthy_model_has_no_alarm(healthy):
    assert healthy.healthy and healthy.ok and not healthy.problems
    assert {"overfit", "init_loss", "learning_rate"} <= {f.check for f in healthy.findings}
    assert str(healthy).startswith("Diagnosis: healthy")


def test_printing_and_json_round_trip(healthy, raw):
    broken = diagnose(mlp(), raw, optimizer=("sgd", 2.0), stages=("data", "init", "overfit"))
    text = str(broken)
    assert "[ERROR  ] dead_after_training" in text and "fix: " in text and "evidence: " in text
    assert "[SKIPPED] lr_find" not in text  # not requested, not skipped
    for d in (healthy, broken):
        data = json.loads(d.to_json())
        assert data == d.to_dict()
        again = Diagnosis.from_dict(data)
        assert [f.to_dict() for f in again.findings] == data["findings"]
        assert again.healthy == d.healthy
    for f in broken.findings:
        for v in f.to_dict()["evidence"].values():
            assert type(v) in (float, int, str, bool, list, dict, type(None))
    severities = [f.severity for f in broken.findings]
    assert severities == sorted(severities, key=("error", "warning", "info").index)


def test_plot_one_figure_four_panels(healthy, std):
    fig = healthy.plot(title="Iris MLP")
    assert len(fig.axes) == 4 and fig.get_layout_engine() is not None
    assert fig.get_size_inches()[0] <= 10
    assert "passed" in fig.axes[2].get_title()
    only_data = diagnose(mlp(), std, stages=("data",))
    assert len(only_data.plot().axes) == 4  # panels of stages not run say so


def test_transformation_optimizer_skips_lr_find(std):
    d = diagnose(mlp(), std, optimizer=optax.adam(1e-2), stages=("data", "lr_find"))
    assert "lr_find" in d.skipped and "name" in d.skipped["lr_find"]


def test_bad_input_raises_at_the_boundary(std):
    with pytest.raises(TypeError, match="data must be"):
        diagnose(mlp(), "iris")
    with pytest.raises(KeyError, match='"y"'):
        diagnose(mlp(), {"x": std["x"]})
    with pytest.raises(ValueError, match="do not fit the model"):
        diagnose(jdl.nn.CNN(features=(4,), ndim=2, num_outputs=3), std)
    with pytest.raises(ValueError, match="stages must be"):
        diagnose(mlp(), std, stages=("data", "training"))
    with pytest.raises(ValueError, match="learning_rate="):
        diagnose(mlp(), std, optimizer="sgd")
    with pytest.raises(ValueError, match="severity"):
        Diagnosis([Finding("labels", "fatal", "x")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = std["x"].copy()
        x[3, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            diagnose(mlp(), {"x": x, "y": std["y"]})


def test_other_label_and_loss_mismatches(std):
    y = std["y"]
    one_hot = np.eye(4, dtype=np.float32)[y]  # 4 classes for a 3-output model
    d = diagnose(mlp(), {"x": std["x"], "y": one_hot}, stages=("data",))
    assert d.top.check == "labels" and "num_outputs=4" in d.top.fix
    d = diagnose(mlp(), {"x": std["x"], "y": y.astype(np.float32)}, "binary_cross_entropy")
    assert d.top.check == "labels" and "binary_cross_entropy" in d.top.verdict
    d = diagnose(mlp(num_outputs=1), std, "mse", stages=("data",))
    assert d.top.check == "output_loss" and "look like classes" in d.top.verdict
    d = diagnose(mlp(output_activation="sigmoid"), std, stages=("data",))
    assert d.top.check == "output_loss" and "[0, 1]" in d.top.verdict
