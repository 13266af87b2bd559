"""jdl.train.search: one fit per configuration, for settings that change shapes."""

from __future__ import annotations

import chex
import numpy as np
import pytest

import jdl
from jdl.train.search import _configs

KW = dict(loss="cross_entropy", optimizer=("adam", 0.01), verbose=0)


def mlp(config):
    return jdl.nn.MLP(widths=(config["width"],) * config["depth"], num_outputs=3)


def test_the_grid_trains_one_fit_per_configuration(train_source, val_source):
    space = {"width": [4, 16], "depth": [1], "batch_size": [32, 64]}
    result = jdl.train.search(mlp, train_source, space=space, epochs=2, validation=val_source,
                              **KW)  # fmt: skip
    assert [tuple(c.values()) for c in result.configs] == [
        (4, 1, 32),
        (4, 1, 64),
        (16, 1, 32),
        (16, 1, 64),
    ]
    for config, history in zip(result.configs, result.histories, strict=True):
        # batch_size (a fit argument) reached fit; the widths reached the model.
        assert history.steps == [256 // config["batch_size"], 2 * (256 // config["batch_size"])]
        assert history.variables["params"]["Dense_0"]["kernel"].shape == (5, config["width"])
        assert history.config["width"] == config["width"]
    alone = jdl.fit(mlp(result.configs[3]), train_source, batch_size=64, epochs=2,
                    validation=val_source, **KW)  # fmt: skip
    chex.assert_trees_all_close(result[3].variables, alone.variables, rtol=1e-6, atol=1e-7)
    # The same result type as sweep: table, best, plot.
    table = result.table(["val_accuracy"])
    assert table.splitlines()[0].split() == ["width", "depth", "batch_size", "val_accuracy"]
    assert len(table.splitlines()) == 2 + 4
    config, history = result.best("val_accuracy")
    assert history.metrics["val_accuracy"][-1] == result.final("val_accuracy").max()
    assert result.final("val_accuracy").max() > result.final("val_accuracy").min()
    assert result.varying() == ["width", "batch_size"]
    assert result.plot("val_accuracy").axes[0].get_legend_handles_labels()[1][0] == (
        "width=4, batch_size=32"
    )


def test_random_trials_are_distinct_reproducible_and_draw_from_distributions():
    grid = {"a": [1, 2, 3], "b": ["x", "y"]}
    picks = _configs(grid, 4, seed=0)
    assert len({tuple(c.values()) for c in picks}) == 4
    assert picks == _configs(grid, 4, seed=0) and picks != _configs(grid, 4, seed=1)
    assert sorted(map(str, _configs(grid, 6, seed=3))) == sorted(
        map(str, _configs(grid, None, seed=0))
    )
    drawn = _configs({"lr": lambda rng: 10 ** rng.uniform(-4, -2), "b": [8, 16]}, 50, seed=0)
    lrs = np.array([c["lr"] for c in drawn])
    assert isinstance(drawn[0]["lr"], float) and np.all((lrs >= 1e-4) & (lrs <= 1e-2))
    assert {c["b"] for c in drawn} == {8, 16}
    with pytest.raises(ValueError, match="only 6 distinct configurations"):
        _configs(grid, 7, seed=0)


def test_build_may_return_fit_arguments_too(train_source):
    def build(config):
        return mlp({"width": 8, "depth": 1}), {"optimizer": ("sgd", config["lr"])}

    result = jdl.train.search(build, train_source, space={"lr": [1e-4, 0.5]}, steps=16,
                              batch_size=32, loss="cross_entropy", verbose=0)  # fmt: skip
    assert result.final("loss")[1] < result.final("loss")[0]
    alone = jdl.fit(mlp({"width": 8, "depth": 1}), train_source, optimizer=("sgd", 0.5),
                    steps=16, batch_size=32, loss="cross_entropy", verbose=0)  # fmt: skip
    chex.assert_trees_all_close(result[1].variables, alone.variables, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("space", "kwargs", "match"),
    [
        ({"width": [4], "depth": [1], "batch_size": [32]}, dict(batch_size=16), "set both"),
        ({"width": lambda rng: 4, "depth": [1]}, {}, "pass trials=N"),
        ({"width": []}, {}, "non-empty list"),
        ({}, {}, "non-empty dict"),
        ({"width": [4], "depth": [1]}, dict(trials=0), "positive integer"),
    ],
)
def test_bad_spaces_raise_clear_errors(train_source, space, kwargs, match):
    kwargs = {"batch_size": 32, **kwargs} if "batch_size" not in space else kwargs
    with pytest.raises(ValueError, match=match):
        jdl.train.search(mlp, train_source, space=space, steps=1, **KW, **kwargs)


def test_build_setting_an_unknown_fit_argument_is_named(train_source):
    with pytest.raises(ValueError, match=r"\['widths'\], which are not arguments of jdl.fit"):
        jdl.train.search(lambda c: (mlp(c), {"widths": (4,)}), train_source,
                         space={"width": [4], "depth": [1]}, steps=1, batch_size=32,
                         **KW)  # fmt: skip
