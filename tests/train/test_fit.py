import json
import logging

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import Checkpoint, CheckpointMismatchError, History, callbacks

KW = dict(batch_size=32, loss="cross_entropy", verbose=0)


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def test_fit_learns_and_records_history(train_source, val_source):
    h = jdl.fit(
        TinyMLP(), train_source, optimizer=optax.adam(1e-2), epochs=4, validation=val_source, **KW
    )
    assert h.epochs == [1, 2, 3, 4]
    assert h.steps == [8, 16, 24, 32]  # 256 // 32 steps per epoch
    assert set(h.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h.metrics["loss"][-1] < h.metrics["loss"][0]
    assert h.metrics["val_accuracy"][-1] > 0.9
    assert set(h.variables) == {"params"}
    # Validation numbers are exact over all 90 examples (padded and masked last batch).
    again = jdl.evaluate(TinyMLP(), h.variables, val_source, batch_size=64)
    assert again["accuracy"] == pytest.approx(h.metrics["val_accuracy"][-1])
    assert again["accuracy"] * 90 == pytest.approx(round(again["accuracy"] * 90))
    # JSON round trip
    back = History.from_json(h.to_json())
    assert back.metrics == h.metrics and back.epochs == h.epochs


def test_history_files_and_plot(tmp_path, train_source, val_source):
    import matplotlib

    matplotlib.use("Agg")
    h = jdl.fit(
        TinyMLP(), train_source, optimizer=optax.adam(1e-2), epochs=2, validation=val_source, **KW
    )
    h.to_json(tmp_path / "history.json")
    h.to_csv(tmp_path / "history.csv")
    assert json.loads((tmp_path / "history.json").read_text())["epochs"] == [1, 2]
    rows = (tmp_path / "history.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "step"] and len(rows) == 3
    fig = h.plot()
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert all(len(ax.get_legend().get_texts()) == 2 for ax in fig.axes)


def test_steps_mode_stops_mid_epoch(train_source):
    h = jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), steps=20, **KW)
    assert h.steps == [8, 16, 20]
    assert int(h.state.step) == 20


def test_exactly_one_compilation_of_the_train_step(train_source, val_source, caplog):
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        jdl.fit(
            TinyMLP(batch_norm=True),
            train_source,
            optimizer=optax.sgd(0.1),
            epochs=3,
            validation=val_source,
            **KW,
        )
    compiles = [r for r in caplog.messages if r.startswith("Compiling jit(train_step)")]
    assert len(compiles) == 1, compiles


def test_same_seed_gives_bitwise_identical_parameters(train_source):
    run = lambda seed: jdl.fit(
        TinyMLP(dropout=0.2, batch_norm=True),
        train_source,  # noqa: E731
        optimizer=optax.adam(1e-2),
        epochs=2,
        seed=seed,
        **KW,
    )
    a, b, c = run(0), run(0), run(1)
    assert _leaves_equal(a.variables, b.variables)
    assert not _leaves_equal(a.variables, c.variables)


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, train_source):
    kw = dict(optimizer=optax.adam(1e-2), **KW)
    model = TinyMLP(dropout=0.2, batch_norm=True)
    full = jdl.fit(model, train_source, epochs=4, **kw)
    first = jdl.fit(model, train_source, epochs=2, callbacks=[Checkpoint(tmp_path)], **kw)
    assert first.epochs == [1, 2]
    resumed = jdl.fit(
        model, train_source, epochs=4, callbacks=[Checkpoint(tmp_path)], resume=True, **kw
    )
    assert resumed.epochs == [1, 2, 3, 4]
    assert resumed.metrics["loss"] == full.metrics["loss"]
    assert _leaves_equal(resumed.variables, full.variables)


def test_resume_with_a_different_model_names_the_mismatch(tmp_path, train_source):
    jdl.fit(
        TinyMLP(),
        train_source,
        optimizer=optax.sgd(0.1),
        epochs=1,
        callbacks=[Checkpoint(tmp_path)],
        **KW,
    )

    class Wider(TinyMLP):
        @nn.compact
        def __call__(self, x, *, train):
            return nn.Dense(self.num_outputs)(nn.relu(nn.Dense(32)(x)))

    with pytest.raises(
        CheckpointMismatchError,
        match=r"params/Dense_0/kernel: checkpoint \(5, 16\), model \(32, 3\)",
    ):
        jdl.fit(
            Wider(),
            train_source,
            optimizer=optax.sgd(0.1),
            epochs=2,
            callbacks=[Checkpoint(tmp_path)],
            resume=True,
            **KW,
        )


def test_terminate_on_nan_names_the_step(train_source):
    x = train_source.x.copy()
    bad = jdl.data.from_arrays(x, train_source.y)
    with pytest.warns(UserWarning, match="became nan at step"):
        h = jdl.fit(
            TinyMLP(),
            bad,
            optimizer=optax.sgd(1e6),
            epochs=20,
            log_every=4,
            callbacks=[callbacks.TerminateOnNaN()],
            loss="cross_entropy",
            batch_size=32,
            verbose=0,
        )
    assert h.stop_reason.startswith("loss became")
    step = int(h.stop_reason.split("at step ")[1].split()[0])
    assert np.isnan(h.metrics["loss"][-1]) or h.metrics["loss"][-1] > 1e3
    assert int(h.state.step) < 20 * 8 and step <= int(h.state.step) < step + 8


def test_early_stopping_restores_best(train_source, val_source):
    stopper = callbacks.EarlyStopping("val_loss", patience=1, restore_best=True)
    h = jdl.fit(
        TinyMLP(),
        train_source,
        optimizer=optax.adam(0.3),
        epochs=30,
        validation=val_source,
        callbacks=[stopper],
        **KW,
    )
    assert h.stop_reason is not None and "did not improve" in h.stop_reason
    assert len(h.epochs) < 30
    best_epoch, best = h.best("val_loss")
    assert stopper.best_epoch == best_epoch
    got = jdl.evaluate(TinyMLP(), h.variables, val_source)["loss"]
    assert got == pytest.approx(best, rel=1e-5)


def test_bad_inputs_are_reported(train_source):
    with pytest.raises(ValueError, match="fewer than one batch of 512"):
        jdl.fit(
            TinyMLP(),
            train_source,
            optimizer=optax.sgd(0.1),
            epochs=1,
            loss="cross_entropy",
            batch_size=512,
            verbose=0,
        )
    with pytest.raises(ValueError, match="epochs.*steps|`epochs` or `steps`"):
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), **KW)
    with pytest.raises(ValueError, match="Unknown strategy"):
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1, strategy="ddp", **KW)
    with pytest.raises(ValueError, match="Unknown loss"):
        jdl.fit(
            TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1, loss="hinge", batch_size=32
        )
    with pytest.raises(ValueError, match='"x" and "y"'):
        jdl.fit(TinyMLP(), [{"inputs": 1}], optimizer=optax.sgd(0.1), epochs=1, **KW)
    with pytest.raises(ValueError, match="resume=True needs"):
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1, resume=True, **KW)


def test_batch_that_does_not_fit_the_model(train_source):
    class Fixed(nn.Module):
        num_outputs: int = 3

        @nn.compact
        def __call__(self, x, *, train):
            if x.shape[-1] != 7:
                raise ValueError(f"expected 7 features, got {x.shape[-1]}")
            return nn.Dense(self.num_outputs)(x)

    with pytest.raises(ValueError, match=r"inputs of shape \(batch, 5\).*expected 7 features"):
        jdl.fit(Fixed(), train_source, optimizer=optax.sgd(0.1), epochs=1, **KW)


def test_learning_rate_logger(train_source):
    tx = jdl.train.optimizer("sgd", 0.1, schedule="step", boundaries=(8,), decay=0.5)
    h = jdl.fit(
        TinyMLP(),
        train_source,
        optimizer=tx,
        epochs=2,
        callbacks=[callbacks.LearningRateLogger()],
        **KW,
    )
    # The rate used by each epoch's last step: steps 1-8 use 0.1, steps 9-16 use 0.05.
    assert h.metrics["learning_rate"] == pytest.approx([0.1, 0.05])


def test_custom_callback_protocol(train_source):
    class Recorder(callbacks.Callback):
        def __init__(self):
            self.events, self.fetched = [], 0

        def on_train_begin(self, run):
            self.events.append("begin")

        def on_metrics(self, run, first_step, metrics):
            self.fetched += len(metrics["loss"])

        def on_epoch_end(self, run, logs):
            self.events.append(f"epoch{run.epoch}")
            logs["custom"] = float(run.epoch * 10)

        def on_train_end(self, run):
            self.events.append("end")

    rec = Recorder()
    h = jdl.fit(
        TinyMLP(),
        train_source,
        optimizer=optax.sgd(0.1),
        epochs=2,
        log_every=3,
        callbacks=[rec],
        **KW,
    )
    assert rec.events == ["begin", "epoch1", "epoch2", "end"]
    assert rec.fetched == 16
    assert h.metrics["custom"] == [10.0, 20.0]


def test_fit_starts_from_given_variables(train_source):
    # Two epochs, then two more from the first run's variables (fresh optimiser state,
    # step 0): the second run starts where the first ended, not from a new init.
    first = jdl.fit(
        TinyMLP(batch_norm=True), train_source, optimizer=optax.sgd(0.05), epochs=2, **KW
    )
    snapshot = jax.tree.map(np.array, first.variables)
    again = jdl.fit(
        TinyMLP(batch_norm=True),
        train_source,
        optimizer=optax.sgd(0.05),
        epochs=1,
        variables=first.variables,
        **KW,
    )
    fresh = jdl.fit(
        TinyMLP(batch_norm=True), train_source, optimizer=optax.sgd(0.05), epochs=1, **KW
    )
    assert again.steps == [8] and int(again.state.step) == 8
    assert again.metrics["loss"][0] < fresh.metrics["loss"][0]
    assert again.metrics["loss"][0] <= first.metrics["loss"][-1] * 1.05
    # The caller's variables are not modified or invalidated (the state is donated, they
    # are not): they still hold the first run's values.
    assert set(first.variables) == {"params", "batch_stats"}
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, first.variables), snapshot)


def test_fit_variables_that_do_not_fit_the_model_are_listed(train_source):
    other = TinyMLP(num_outputs=5).init(
        jax.random.key(0), np.zeros((1, 5), np.float32), train=False
    )
    with pytest.raises(ValueError, match=r"shape.*\(16, 5\).*\(16, 3\)") as err:
        jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(0.1), epochs=1, variables=other, **KW)
    assert "Dense_1" in str(err.value)
    with pytest.raises(ValueError, match=r"missing.*batch_stats"):
        jdl.fit(
            TinyMLP(batch_norm=True),
            train_source,
            optimizer=optax.sgd(0.1),
            epochs=1,
            variables={"params": first_params(train_source)},
            **KW,
        )
    with pytest.raises(ValueError, match="resume=True and variables="):
        jdl.fit(
            TinyMLP(),
            train_source,
            optimizer=optax.sgd(0.1),
            epochs=1,
            variables=other,
            resume=True,
            **KW,
        )


def first_params(source):
    v = TinyMLP(batch_norm=True).init(jax.random.key(0), source[0:1]["x"], train=False)
    return v["params"]
