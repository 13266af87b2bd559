"""The MNIST-1D table script (examples/07_training) on a shortened schedule.

The full schedule (6,000 steps, 3 seeds) takes minutes and its numbers are recorded in
the issue's closing note and printed by the script; here 400 steps and one seed must
already show the paper's ordering and most of its accuracies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "examples" / "07_training" / "plot_mnist1d_table.py"


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("mnist1d_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines functions only; the run is under __main__
    return module


def test_models_have_the_papers_sizes(table):
    import jax
    import jax.numpy as jnp

    import jdl

    sizes = {}
    for name, model in table.paper_models().items():
        shapes = jax.eval_shape(lambda m=model: m.init(jax.random.key(0), jnp.ones((1, 40)),
                                                       train=False))  # fmt: skip
        sizes[name] = jdl.nn.count_params(shapes["params"])
    # Paper: 410, ~15k, ~5.2k, ~5.1k (its GRU has PyTorch's second bias per gate: 5,134).
    assert sizes == {"logistic": 410, "mlp": 15210, "cnn": 5210, "gru": 5110}


@pytest.mark.slow
def test_shortened_schedule_reproduces_the_ordering(table):
    results = table.reproduce(steps=400, seeds=1)
    acc = {name: r["mean"] for name, r in results.items()}
    assert 28.0 <= acc["logistic"] <= 36.0, acc
    assert acc["mlp"] >= 58.0, acc
    assert acc["cnn"] >= 80.0, acc
    assert acc["gru"] >= 70.0, acc
    assert acc["cnn"] > acc["mlp"] > acc["logistic"], acc
    text = table.format_table(results, 400, 1)
    assert "paper %" in text and "cnn" in text and len(text.splitlines()) == 6
