"""fit(debug=True) names the step, batch, input, layer and parameter that first went NaN/inf;
TerminateOnNaN and fit's default name the first non-finite parameter."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TinyMLP, blobs

import jdl
from jdl.train import NonFiniteError, callbacks, create_state, train_step
from jdl.train.debug import DebugMonitor
from jdl.train.nonfinite import DebugLayout

KW = dict(batch_size=32, loss="cross_entropy", verbose=0, log_every=4)


class Blowup(nn.Module):
    """exp(1000 x): inf for any positive input, from finite inputs."""

    @nn.compact
    def __call__(self, x):
        return jnp.exp(1000.0 * x)


class Exploding(nn.Module):
    """Dense -> Blowup -> Dense: the Blowup layer is the first to produce inf."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Dense(8)(x)
        x = Blowup()(x)
        return nn.Dense(3)(x)


class SqrtScale(nn.Module):
    """Adds sqrt(s) with s = 0: finite forward, an infinite gradient for ``s`` only."""

    @nn.compact
    def __call__(self, x):
        s = self.param("s", nn.initializers.zeros, ())
        return x + jnp.sqrt(s)


class NanGradient(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.relu(nn.Dense(8)(x))
        x = SqrtScale()(x)
        return nn.Dense(3)(x)


class Rows:
    """A random-access source that is not held in memory (so it streams through Grain and
    only its first batch is checked up front): example ``bad`` holds NaN."""

    def __init__(self, n: int, bad: int):
        src = blobs(n)
        self.x, self.y = np.array(src.x), np.array(src.y)
        self.x[bad, 2] = np.nan

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def test_an_exploding_layer_is_named(train_source):
    with pytest.raises(NonFiniteError) as info:
        jdl.fit(Exploding(), train_source, optimizer=optax.sgd(0.1), epochs=2, debug=True, **KW)
    err = info.value
    assert (err.step, err.epoch, err.batch, err.examples) == (1, 1, 0, (0, 32))
    assert err.layer == "Blowup_0" and err.inputs == {} and not err.loss_finite
    message = str(err)
    assert "step 1 (epoch 1, its batch 1 of 8: examples 0-31" in message
    assert "Cause: layer Blowup_0 produced it" in message and "input batch: finite" in message


def test_a_nan_gradient_names_the_parameter(train_source):
    with pytest.raises(NonFiniteError) as info:
        jdl.fit(NanGradient(), train_source, optimizer=optax.adam(1e-2), steps=8, debug=True, **KW)
    err = info.value
    assert err.step == 1 and err.layer is None and err.loss_finite
    assert err.gradient == "params/SqrtScale_0/s"
    assert "the backward pass produced it" in str(err)
    assert "first non-finite gradient: params/SqrtScale_0/s (1 values; 1 of 5 parameters" in str(
        err
    )


def test_a_nan_input_batch_is_named_with_its_examples(monkeypatch):
    monkeypatch.setattr(jdl.train.feed, "_IN_MEMORY_BYTES", 0)  # stream: no up-front check
    with pytest.raises(NonFiniteError) as info:
        jdl.fit(TinyMLP(), Rows(128, bad=77), optimizer=optax.sgd(0.1), epochs=3,
                shuffle=False, debug=True, **KW)  # fmt: skip
    err = info.value
    assert (err.step, err.batch, err.examples, err.example) == (3, 2, (64, 96), 77)
    assert err.inputs == {"x": 1}
    message = str(err)
    assert "Cause: the input batch itself held NaN/inf" in message
    assert "'x' (1 values); the first in example 77 of the epoch" in message
    assert "examples 64-95 of the epoch's order" in message


def test_a_label_outside_the_outputs_past_the_first_batch_is_named(monkeypatch):
    # streamed: the up-front check reads the first batch only; debug counts on the device
    monkeypatch.setattr(jdl.train.feed, "_IN_MEMORY_BYTES", 0)
    rows = Rows(128, bad=0)
    rows.x[0, 2] = 0.0  # finite inputs
    rows.y[77] = 9  # the model has 3 outputs
    with pytest.raises(
        ValueError,
        match=r"step 3 .*examples 64-95 .* 1 class label\(s\) "
        r"outside \[0, 3\) .*labels from 0 to 9",
    ):
        jdl.fit(TinyMLP(), rows, optimizer=optax.sgd(0.1), epochs=3, shuffle=False,
                debug=True, **KW)  # fmt: skip


def test_the_first_bad_step_of_a_fetch_is_reported():
    layout = DebugLayout(inputs=("x",), layers=("Dense_0", "Dense_1"),
                         grads=("params/Dense_1/kernel", "params/Dense_0/kernel"),
                         variables=("params/Dense_1/kernel", "params/Dense_0/kernel"))  # fmt: skip
    monitor = DebugMonitor(layout, batch_size=10, steps_per_epoch=5)
    rows = 4
    fetched = {
        "loss": np.array([1.0, 1.0, np.nan, np.nan]),
        "debug/inputs": np.zeros((rows, 1), np.int32),
        "debug/first_example": np.full(rows, -1, np.int32),
        "debug/loss": np.array([0, 0, 1, 1], np.int32),
        "debug/layers": np.array([[0, 0], [0, 0], [0, 2], [3, 3]], np.int32),
        "debug/grads": np.array([[0, 0], [0, 0], [4, 4], [4, 4]], np.int32),
        "debug/variables": np.zeros((rows, 2), np.int32),
    }
    debug = dict(fetched)
    with pytest.raises(NonFiniteError) as info:
        monitor.check(4, fetched)  # rows are steps 4..7: step 6 is the first bad one
    err = info.value
    assert (err.step, err.epoch, err.batch, err.examples) == (6, 2, 0, (0, 10))
    assert err.layer == "Dense_1"
    assert err.gradient == "params/Dense_0/kernel"  # forward order, not the tree's
    assert set(fetched) == {"loss"}  # the debug entries are taken out
    finite = {k: v[:2] for k, v in debug.items()}
    monitor.check(1, finite)  # steps 1-2 were finite: nothing to report
    assert set(finite) == {"loss"}


def test_terminate_on_nan_names_the_first_non_finite_parameter(train_source):
    with pytest.warns(UserWarning, match="became nan at step") as record:
        h = jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(1e6), epochs=20,
                    callbacks=[callbacks.TerminateOnNaN()], **KW)  # fmt: skip
    reason = h.stop_reason
    assert "first non-finite parameter: params/Dense_0/bias" in reason
    assert "arrays non-finite" in reason and f"at step {int(h.state.step)}," in reason
    assert len([w for w in record if "fit: the mean training loss" in str(w.message)]) == 0


def test_fit_warns_once_naming_the_parameter_without_callbacks(train_source):
    with pytest.warns(UserWarning, match="fit: the mean training loss of epoch") as record:
        h = jdl.fit(TinyMLP(), train_source, optimizer=optax.sgd(1e6), epochs=3, **KW)
    assert h.epochs == [1, 2, 3]  # training goes on
    messages = [str(w.message) for w in record if "mean training loss" in str(w.message)]
    assert len(messages) == 1
    assert "first non-finite parameter: params/Dense_0/bias" in messages[0]
    assert "debug=True" in messages[0]


def test_debug_false_compiles_the_plain_step(train_source):
    batch = {"x": np.asarray(train_source.x[:8]), "y": np.asarray(train_source.y[:8])}
    state = _abstract_state(TinyMLP(batch_norm=True), batch)
    step = functools.partial(train_step, loss_fn="cross_entropy", metrics=("accuracy",))
    plain = jax.make_jaxpr(step)(state, batch)
    debug = jax.make_jaxpr(functools.partial(step, debug=True))(state, batch)
    assert "is_finite" not in str(plain) and "is_finite" in str(debug)
    assert str(plain) == str(jax.make_jaxpr(functools.partial(step, debug=False))(state, batch))
    _, metrics = jax.eval_shape(step, state, batch)
    assert set(metrics) == {"loss", "accuracy"}
    _, metrics = jax.eval_shape(functools.partial(step, debug=True), state, batch)
    debug_keys = {"inputs", "first_example", "loss", "layers", "grads", "variables", "labels"}
    assert set(metrics) == {"loss", "accuracy"} | {"debug/" + k for k in debug_keys}
    # A finite debug run records what a plain run records, with the same numbers.
    runs = [jdl.fit(TinyMLP(batch_norm=True), train_source, optimizer=optax.sgd(0.1), epochs=1,
                    debug=d, **KW) for d in (False, True)]  # fmt: skip
    assert runs[0].metrics == runs[1].metrics and set(runs[1].metrics) == {"loss", "accuracy"}


def _abstract_state(model, batch):
    return jax.eval_shape(lambda: create_state(model, optax.sgd(0.1), batch, seed=0))


def test_layouts_of_batchnorm_and_recurrent_models():
    batch = {"x": np.zeros((2, 8, 8, 3), np.float32), "y": np.zeros(2, np.int32)}
    model = jdl.nn.CifarResNet(depth=20, num_outputs=10)
    layout = DebugLayout.of(model, _abstract_state(model, batch), batch)
    assert layout.layers[:3] == ("conv1", "bn1", "layer1_0/conv1")
    assert layout.layers.index("layer1_0/conv2") < layout.layers.index("layer1_0")
    assert "batch_stats/bn1/mean" in layout.variables and layout.inputs == ("x",)
    rnn = jdl.nn.RNNClassifier(num_outputs=3, hidden_size=4, cell="lstm")
    seq = {"x": np.zeros((2, 5, 3), np.float32), "y": np.zeros(2, np.int32)}
    state = _abstract_state(rnn, seq)
    layout = DebugLayout.of(rnn, state, seq)
    assert "head" in layout.layers  # cells inside the scan cannot report; the rest do
    step = functools.partial(train_step, loss_fn="cross_entropy", debug=True)
    _, metrics = jax.eval_shape(step, state, seq)
    assert metrics["debug/layers"].shape == (len(layout.layers),)
    assert metrics["debug/grads"].shape == (len(layout.grads),)


@pytest.mark.multidevice
@pytest.mark.parametrize("strategy", ["sharded", "pmap"])
def test_strategies_report_the_same_culprit(strategy, train_source, monkeypatch):
    with pytest.raises(NonFiniteError) as info:
        jdl.fit(TinyMLP(batch_norm=True, num_outputs=3), train_source, optimizer=optax.sgd(1e8),
                epochs=4, debug=True, strategy=strategy, **KW)  # fmt: skip
    with pytest.raises(NonFiniteError) as ref:
        jdl.fit(TinyMLP(batch_norm=True, num_outputs=3), train_source, optimizer=optax.sgd(1e8),
                epochs=4, debug=True, strategy="jit", **KW)  # fmt: skip
    got, want = info.value, ref.value
    assert (got.step, got.layer, got.gradient, got.variable) == (
        want.step, want.layer, want.gradient, want.variable)  # fmt: skip
    # The first bad example's position counts the earlier devices' slices of the batch.
    monkeypatch.setattr(jdl.train.feed, "_IN_MEMORY_BYTES", 0)
    with pytest.raises(NonFiniteError) as info:
        jdl.fit(TinyMLP(), Rows(128, bad=77), optimizer=optax.sgd(0.1), epochs=3,
                shuffle=False, debug=True, strategy=strategy, **KW)  # fmt: skip
    assert (info.value.step, info.value.example, info.value.inputs) == (3, 77, {"x": 1})
