"""
Skip connections and depth (He et al. 2016)
===========================================

Deeper should never be worse: a deeper network could copy a shallower one and set its
extra layers to the identity. Yet plain networks *do* get worse with depth -- higher
*training* error, so it is not overfitting but optimisation (the "degradation problem").
Residual connections ``h + f(h)`` make the identity the default and remove it. Two
experiments, each plain vs residual with the same budget:

1. BatchNorm-ReLU MLPs (width 64) on MNIST-1D (4,000 training examples, 40 features,
   10 classes) at 5, 17 and 49 hidden layers; Adam, lr 3e-3, batch 100.
2. He et al.'s CIFAR ResNets, :class:`jdl.nn.CifarResNet` and its ``plain=True`` twin
   (the same layers without any skip connection; BatchNorm after every conv in both), on
   the bundled digits images (8 x 8 grey, 1,437 training and 360 test images), trained with
   :func:`jdl.fit`: SGD with momentum 0.9, lr 0.05 with cosine decay to 0, batch 64 (22
   steps per epoch), no weight decay, no augmentation.

Budgets. Default (the docs build): MLPs 300 steps; CifarResNets scaled down to 8 and 32
layers with 8 channels in the first stage, 4 epochs (88 steps). ``JDL_DOCS_FULL=1``: MLPs
2,000 steps; the paper's CifarResNet-20 and -56 (16 channels), 20 epochs (440 steps).

Measured on a 2-core CPU, training error of the final model (MLPs: on the whole training
set, evaluation mode; CifarResNets: also in evaluation mode, test error on the 360 test
images). Full run, ``MPLBACKEND=Agg JDL_DOCS_FULL=1 python
examples/02_understanding/plot_skip_connections_depth.py`` (about 11 minutes):

============================  ========  ========  ========
MLP on MNIST-1D, 2,000 steps  5 layers  17        49
============================  ========  ========  ========
plain                         1.8 %     11.2 %    81.9 %
residual                      1.1 %     1.6 %     2.3 %
============================  ========  ========  ========

======================  ===========  ===========  ==========
CifarResNet, 440 steps  train error  train loss   test error
======================  ===========  ===========  ==========
plain-20                0.0 %        0.0015       0.6 %
plain-56                46.3 %       1.36         49.4 %
residual-20             0.0 %        0.0002       1.7 %
residual-56             0.0 %        0.0003       1.7 %
======================  ===========  ===========  ==========

Plain-56 has a far *higher* training error than plain-20 after the same 440 steps (and a
training loss that has barely started to fall), while residual-56 trains as well as
residual-20: He et al.'s Figure 6 in miniature (the curves are in
``benchmarks/results/depth_degradation_digits.json``). The default run (3-4 minutes) is
the one on this page, and its numbers are printed below: after 300 steps the plain MLPs
already get worse with depth, the residual ones much less, and after 88 steps plain-32
has a far higher training error than plain-8 while residual-32 is no worse than
residual-8. The checks after each figure fail the build if that stops being true.
"""

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

FULL = os.environ.get("JDL_DOCS_FULL") == "1"
STEPS = 2000 if FULL else 300
a = jdl.data.as_arrays(jdl.data.load("mnist1d", "train"))
data = {"x": a["x"].astype(np.float32), "y": a["y"].astype(np.int32)}

# %%
# Plain vs residual BN-ReLU MLPs
# ------------------------------
depths = (5, 17, 49)
error = {}
for residual in (False, True):
    for depth in depths:
        model = jdl.nn.MLP(
            widths=(64,) * depth,
            num_outputs=10,
            batch_norm=True,
            residual=residual,
            kernel_init="he",
        )
        run = jdl.analysis.scan_fit(
            model, data, "cross_entropy", optimizer=optax.adam(3e-3), steps=STEPS, batch_size=100
        )
        error[(residual, depth)] = 1 - run.metrics["accuracy"]
        kind = "residual" if residual else "plain"
        print(f"{kind:>8} depth {depth:>2}: train error {error[(residual, depth)]:.1%}")

fig, ax = plt.subplots(figsize=(6, 4))
for residual in (False, True):
    ax.plot(
        depths,
        [error[(residual, d)] for d in depths],
        marker="o",
        label="residual" if residual else "plain",
    )
ax.set_xlabel("hidden layers")
ax.set_ylabel("training error after the budget")
ax.set_title(f"MNIST-1D, BN-ReLU MLPs, {STEPS} Adam steps")
ax.legend()
plt.show()
plain_err = [error[(False, d)] for d in depths]
residual_err = [error[(True, d)] for d in depths]
# The plain nets get worse at every step in depth; the residual ones far less, if at all.
assert plain_err[0] + 0.05 < plain_err[1] < plain_err[2] - 0.05, plain_err
assert max(residual_err) - min(residual_err) < 0.25 * (plain_err[2] - plain_err[0]), error
assert residual_err[2] < plain_err[2] - 0.3, error

# %%
# Why: the gradient flow of the two 49-layer networks at initialisation.
batch = {"x": data["x"][:256], "y": data["y"][:256]}
first_over_last = {}
for residual in (False, True):
    model = jdl.nn.MLP(
        widths=(64,) * 49, num_outputs=10, batch_norm=True, residual=residual, kernel_init="he"
    )
    v = model.init(jax.random.key(0), batch["x"][:1], train=False)
    flow = jdl.analysis.gradient_flow(model, v, batch, "cross_entropy")
    print("residual" if residual else "plain", "-", flow.summary().splitlines()[0])
    first_over_last[residual] = flow.layers[0].grad_norm / flow.layers[-1].grad_norm
# The plain net's first layer gets gradients thousands of times larger than its last; the
# residual net's are within an order of magnitude of each other.
assert first_over_last[False] > 100 and 0.01 < first_over_last[True] < 10, first_over_last

# %%
# CifarResNet: plain vs residual on the digits images
# ---------------------------------------------------
# The same architecture with and without its skip connections, the same optimiser, data
# order and number of steps. A callback keeps the loss of every training step.

CNN_DEPTHS, WIDTH, EPOCHS = ((20, 56), 16, 20) if FULL else ((8, 32), 8, 4)
train = jdl.data.load("digits", "train")
test = jdl.data.load("digits", "test")
cnn_steps = EPOCHS * (len(train) // 64)


class StepLosses(jdl.train.callbacks.Callback):
    """Collects the training loss of every step."""

    def __init__(self):
        self.losses = []

    def on_metrics(self, run, first_step, metrics):
        self.losses.extend(np.asarray(metrics["loss"]).tolist())


curves, histories, cnn_error = {}, {}, {}
for depth in CNN_DEPTHS:
    for plain in (True, False):
        name = f"{'plain' if plain else 'residual'}-{depth}"
        model = jdl.nn.CifarResNet(depth=depth, plain=plain, width=WIDTH)
        steps_cb = StepLosses()
        hist = jdl.fit(
            model,
            train,
            batch_size=64,
            optimizer=optax.sgd(optax.cosine_decay_schedule(0.05, cnn_steps), momentum=0.9),
            loss="cross_entropy",
            epochs=EPOCHS,
            callbacks=[steps_cb],
            verbose=0,
        )
        curves[name], histories[name] = steps_cb.losses, hist
        on_train = jdl.evaluate(model, hist.state, train)
        on_test = jdl.evaluate(model, hist.state, test)
        cnn_error[name] = 1 - on_train["accuracy"]
        print(
            f"CifarResNet {name:>11}: train error {1 - on_train['accuracy']:6.1%} "
            f"(loss {on_train['loss']:.4f}), test error {1 - on_test['accuracy']:6.1%}"
        )

fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
for name, losses in curves.items():
    style = "--" if name.startswith("plain") else "-"
    smooth = np.convolve(losses, np.ones(11) / 11, mode="valid")
    ax_loss.plot(np.arange(len(smooth)) + 6, smooth, style, label=name)
    hist = histories[name]
    ax_err.plot(hist.steps, [1 - acc for acc in hist.metrics["accuracy"]], style, label=name)
ax_loss.set_yscale("log")
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("training loss (11-step average)")
ax_err.set_xlabel("step")
ax_err.set_ylabel("training error (epoch average)")
for ax in (ax_loss, ax_err):
    ax.legend(fontsize=9)
fig.suptitle(f"CifarResNets (width {WIDTH}) on digits, SGD + momentum, {cnn_steps} steps")
plt.show()
# The deeper plain CifarResNet has the far higher *training* error; the deeper residual
# one is no worse than the shallower.
shallow, deep = CNN_DEPTHS
plain_gap = cnn_error[f"plain-{deep}"] - cnn_error[f"plain-{shallow}"]
residual_gap = cnn_error[f"residual-{deep}"] - cnn_error[f"residual-{shallow}"]
assert plain_gap > 0.2 and residual_gap < 0.05, cnn_error

# %%
# Takeaway
# --------
# With the same budget, the plain network's training error rises with depth while the
# residual one's does not: skip connections make very deep networks as easy to optimise as
# shallow ones. The deep plain network is not overfitting -- it fits its *training* data
# worse -- and its gradients at initialisation already show why.
