"""Training experiments of issue #4 on small budgets: He et al. 2015 (30-layer ReLU),
Ioffe & Szegedy 2015 (BatchNorm, sigmoid), He et al. 2016 (depth degradation)."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jdl import analysis
from jdl.nn import MLP


@pytest.mark.slow
def test_he_init_trains_30_layer_relu_where_glorot_stalls(digits_std):
    # Digits (1,437 train examples, standardised), 30 ReLU layers of width 128 (256 in the
    # tutorial), SGD + momentum 0.9, lr 3e-3, batch 64, 450 steps.
    acc, reports = {}, {}
    for init in ("glorot", "he"):
        model = MLP(widths=(128,) * 30, num_outputs=10, kernel_init=init)
        run = analysis.scan_fit(
            model,
            digits_std,
            "cross_entropy",
            optimizer=optax.sgd(3e-3, momentum=0.9),
            steps=450,
            batch_size=64,
        )
        acc[init] = run.metrics["accuracy"]
        if init == "glorot":
            batch = {"x": digits_std["x"][:256], "y": digits_std["y"][:256]}
            reports[init] = analysis.gradient_flow(
                model,
                model.init(jax.random.key(0), batch["x"][:1], train=False),
                batch,
                "cross_entropy",
            )
    assert acc["glorot"] <= 0.15, acc
    assert acc["he"] >= 0.95, acc
    # Why: under Glorot the signal halves in variance at every ReLU layer, forward and
    # backward -- activations and back-propagated gradients vanish from the top down.
    layers = reports["glorot"].layers
    assert layers[0].verdict == "vanishing"
    stds = [r.activation_std for r in layers[:-1]]
    assert stds[-1] < 1e-2 * stds[0]


def _ioffe_szegedy_runs(digits, lr):
    """Their MNIST net on digits, without and with BatchNorm: 3 sigmoid layers of 100, batch
    60, 600 steps of SGD at ``lr``. Returns ``{batch_norm: ScanRun}``."""
    runs = {}
    for bn in (False, True):
        model = MLP(
            widths=(100,) * 3,
            num_outputs=10,
            activation="sigmoid",
            kernel_init="standard",
            batch_norm=bn,
        )
        runs[bn] = analysis.scan_fit(
            model, digits, "cross_entropy", optimizer=optax.sgd(lr), steps=600, batch_size=60
        )
    return runs


@pytest.mark.slow
def test_batchnorm_sigmoid_digits(digits):
    # Ioffe & Szegedy's MNIST net on digits: 3 sigmoid layers of 100, batch 60, SGD lr 0.5.
    acc = {bn: run.metrics["accuracy"] for bn, run in _ioffe_szegedy_runs(digits, 0.5).items()}
    assert acc[False] < 0.2, acc  # near chance
    assert acc[True] > 0.95, acc


@pytest.mark.slow
def test_batchnorm_trains_at_a_learning_rate_where_the_plain_net_diverges(digits):
    # SGD lr 5: the plain sigmoid net's loss jumps far above ln 10 (measured ~7.8) and it
    # stays at chance; with BatchNorm it trains (measured 99.9 % after 1,000 steps).
    runs = _ioffe_szegedy_runs(digits, 5.0)
    assert runs[False].metrics["accuracy"] < 0.2
    assert np.max(runs[False].losses) > 2 * np.log(10)
    assert runs[True].metrics["accuracy"] > 0.95


@pytest.mark.slow
def test_depth_degradation_plain_vs_residual():
    # BN-ReLU MLPs on MNIST-1D (4,000 training examples): train accuracy after a fixed budget.
    import jdl.data

    a = jdl.data.as_arrays(jdl.data.load("mnist1d", "train"))
    data = {"x": a["x"].astype(np.float32), "y": a["y"].astype(np.int32)}
    acc = {}
    for depth, residual in ((4, False), (32, False), (32, True)):
        model = MLP(
            widths=(64,) * depth,
            num_outputs=10,
            batch_norm=True,
            residual=residual,
            kernel_init="he",
        )
        run = analysis.scan_fit(
            model, data, "cross_entropy", optimizer=optax.adam(3e-3), steps=300, batch_size=100
        )
        acc[(depth, residual)] = run.metrics["accuracy"]
    assert acc[(32, False)] < acc[(4, False)] - 0.05, acc
    assert acc[(32, True)] > acc[(32, False)] + 0.05, acc


@pytest.mark.slow
def test_depth_degradation_plain_vs_residual_cifar_resnet():
    # CifarResNets with 8 channels (the paper's 16 in the tutorial) on the bundled digits
    # images (1,437 training images, 8 x 8), 4 epochs = 88 steps of SGD + momentum 0.9,
    # lr 0.05 cosine-decayed, batch 64. Measured (seeds 0 / 1): epoch-4 training accuracy
    # plain-8 98.0 / 97.2 %, plain-32 47.7 / 44.3 %, residual-32 99.5 / 99.2 %. About 60 s on
    # a 2-core CPU, mostly compilation.
    import jdl.data
    from jdl.nn import CifarResNet
    from jdl.train import fit

    train = jdl.data.load("digits", "train")
    steps = 4 * (len(train) // 64)
    acc = {}
    for depth, plain in ((8, True), (32, True), (32, False)):
        hist = fit(
            CifarResNet(depth=depth, plain=plain, width=8),
            train,
            batch_size=64,
            optimizer=optax.sgd(optax.cosine_decay_schedule(0.05, steps), momentum=0.9),
            loss="cross_entropy",
            epochs=4,
            verbose=0,
        )
        # Training accuracy averaged over the last epoch (train mode): no extra compile.
        acc[(depth, plain)] = hist.metrics["accuracy"][-1]
    assert acc[(32, True)] < acc[(8, True)] - 0.2, acc  # deeper plain net trains worse
    assert acc[(32, False)] > acc[(32, True)] + 0.2, acc  # the skips remove the gap
    assert acc[(32, False)] > 0.95, acc
