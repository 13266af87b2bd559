"""Every jdl ``plot()`` returns the matplotlib Figure it drew on."""

import jax
import jax.numpy as jnp
import matplotlib
import optax
import pytest
from matplotlib.figure import Figure

import jdl
from jdl import analysis
from jdl.nn import MLP

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def small():
    x = jax.random.normal(jax.random.key(1), (64, 6))
    batch = {"x": x, "y": (x[:, 0] > 0).astype(jnp.int32)}
    model = MLP(widths=(8, 8), num_outputs=2, activation="tanh")
    return model, model.init(jax.random.key(0), x[:1], train=False), batch


def test_every_report_plot_returns_its_figure(small):
    model, variables, batch = small
    residual = MLP(widths=(8,) * 4, num_outputs=2, residual=True)
    reports = {
        "gradient_flow": analysis.gradient_flow(model, variables, batch, "cross_entropy"),
        "activation_stats": analysis.activation_stats(model, variables, batch),
        "signal_propagation": analysis.signal_propagation(
            residual, residual.init(jax.random.key(0), batch["x"][:1], train=False), batch["x"]
        ),
        "lr_find": analysis.lr_find(model, batch, "cross_entropy", optimizer="adam", steps=20),
        "compare_inits": analysis.compare_inits(model, ["glorot", "he"], batch),
        "history": jdl.fit(
            model, (batch["x"], batch["y"]), batch_size=32, epochs=1, loss="cross_entropy",
            optimizer=optax.sgd(0.1), verbose=0,
        ),
        "sweep": jdl.train.sweep(
            model, (batch["x"], batch["y"]), batch_size=32, epochs=1, loss="cross_entropy",
            optimizer="sgd", learning_rates=[0.1, 0.2], verbose=0,
        ),
    }  # fmt: skip
    for name, report in reports.items():
        fig = report.plot()
        assert isinstance(fig, Figure), (name, type(fig))
        assert fig.axes, name
