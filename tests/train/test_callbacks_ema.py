"""EMA: the average is updated at every step (whatever log_every is), equal to one
computed by hand from the parameters after each step; swap_on_end; resume."""

import jax
import numpy as np
import optax
import pytest
from conftest import TinyMLP

import jdl
from jdl.train import EMA, Checkpoint, averaged_params, callbacks, ema_params

KW = dict(batch_size=64, loss="cross_entropy", verbose=0, optimizer=("sgd", 0.5))


class _EveryStep(callbacks.Callback):
    """The parameters at the start and after every step (with log_every=1)."""

    def on_train_begin(self, run):
        self.params = [jax.tree.map(np.array, run.state.params)]

    def on_metrics(self, run, first_step, metrics):
        assert first_step == len(self.params)  # one fetch per step
        self.params.append(jax.tree.map(np.array, run.state.params))


def _hand_ema(snapshots, decay):
    ema = jax.tree.map(lambda p: p.astype(np.float64), snapshots[0])
    for params in snapshots[1:]:
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
    return ema


def _close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **kw)


def test_ema_equals_a_hand_computed_average_of_every_step(train_source):
    decay = 0.8
    recorder = _EveryStep()
    raw = jdl.fit(TinyMLP(), train_source, epochs=3, callbacks=[recorder], log_every=1, **KW)
    assert len(recorder.params) == 3 * 4 + 1
    want = _hand_ema(recorder.params, decay)

    ema = EMA(decay)  # default log_every=50: fetched once per epoch only
    h = jdl.fit(TinyMLP(), train_source, epochs=3, callbacks=[ema], **KW)
    _close(ema.variables["params"], want, rtol=1e-5, atol=1e-6)
    # the average does not change the training, and is not the final weights
    _close(h.variables["params"], raw.variables["params"], rtol=0, atol=0)
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), want, h.state.params))
    assert max(diff) > 1e-3
    # an average of the once-per-epoch snapshots would be a different number
    per_epoch = _hand_ema(recorder.params[::4], decay**4)
    gaps = jax.tree.map(lambda a, b: np.abs(a - b).max(), per_epoch, want)
    assert max(jax.tree.leaves(gaps)) > 1e-3


def test_swap_on_end_puts_the_average_in_the_history(train_source, val_source):
    ema = EMA(0.9, swap_on_end=True)
    h = jdl.fit(TinyMLP(batch_norm=True), train_source, epochs=2, callbacks=[ema], **KW)
    _close(h.variables["params"], ema.variables["params"], rtol=0, atol=0)
    _close(h.variables["batch_stats"], ema.variables["batch_stats"], rtol=0, atol=0)
    _close(h.variables["params"], averaged_params(h.state.opt_state), rtol=0, atol=0)
    jdl.evaluate(TinyMLP(batch_norm=True), h.variables, val_source)  # usable as it is


def test_resume_with_the_wrapped_optimizer_continues_the_average(tmp_path, train_source):
    full = EMA(0.8)
    jdl.fit(TinyMLP(), train_source, epochs=4, callbacks=[full], **KW)

    def run(epochs, resume):
        ema = EMA(0.8)
        kw = {**KW, "optimizer": ema.wrap(optax.sgd(0.5))}
        jdl.fit(TinyMLP(), train_source, epochs=epochs, callbacks=[Checkpoint(tmp_path), ema],
                resume=resume, **kw)  # fmt: skip
        return ema

    run(2, resume=False)
    resumed = run(4, resume=True)
    _close(resumed.variables["params"], full.variables["params"], rtol=1e-6, atol=1e-7)


def test_ema_params_transform_and_bad_decay():
    tx = optax.chain(optax.sgd(1.0), ema_params(0.5))
    params = {"w": np.zeros(2, np.float32)}
    state = tx.init(params)
    grads = {"w": np.full(2, -2.0, np.float32)}
    updates, state = tx.update(grads, state, params)  # w -> 2
    np.testing.assert_array_equal(
        updates["w"], optax.sgd(1.0).update(grads, optax.sgd(1.0).init(params))[0]["w"]
    )
    np.testing.assert_allclose(averaged_params(state)["w"], [1.0, 1.0])
    assert averaged_params(optax.sgd(1.0).init(params)) is None
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        EMA(1.0)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update({"w": np.ones(2, np.float32)}, state)


@pytest.mark.multidevice
def test_ema_and_plateau_agree_across_strategies(train_source):
    from jdl.train import ReduceLROnPlateau, learning_rate

    results = {}
    for strategy in ("jit", "sharded", "pmap"):
        ema = EMA(0.8)
        plateau = ReduceLROnPlateau("loss", mode="max", patience=1, verbose=0)
        h = jdl.fit(TinyMLP(batch_norm=True), train_source, epochs=3, strategy=strategy,
                    callbacks=[ema, plateau], **{**KW, "batch_size": 32})  # fmt: skip
        results[strategy] = (ema.variables, float(learning_rate(h.state.opt_state)))
    ref, ref_lr = results["jit"]
    assert ref_lr == pytest.approx(0.005)  # reduced after epochs 2 and 3
    for strategy, (variables, lr) in results.items():
        assert lr == pytest.approx(ref_lr), strategy
        _close(variables, ref, rtol=1e-4, atol=1e-5)
