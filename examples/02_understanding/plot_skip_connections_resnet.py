"""
Skip connections and depth: plain vs residual CifarResNets
==========================================================

This tutorial reproduces, in miniature, Figure 6 of He et al. (2016): trained the same
way, a deeper *plain* convolutional network reaches a far higher *training* error than a
shallower one, while with skip connections the deeper network trains as well as the
shallower. (The same degradation on MLPs, and the gradients that explain it, are in the
previous tutorial, :doc:`plot_skip_connections_mlp`.)

The networks are He et al.'s CIFAR ResNets, :class:`jdl.nn.CifarResNet`, and its
``plain=True`` twin: the same layers without any skip connection (BatchNorm after every
conv in both). They are trained on the bundled digits images (8 x 8 grey, 1,437 training
and 360 test images) with :func:`jdl.fit`: SGD with momentum 0.9, lr 0.05 with cosine
decay to 0, batch 64 (22 steps per epoch), no weight decay, no augmentation.

Budgets. Default (the docs build): the CifarResNets scaled down to 8 and 32 layers with 8
channels in the first stage, 3 epochs (66 steps). ``JDL_DOCS_FULL=1``: the paper's
CifarResNet-20 and -56 (16 channels), 20 epochs (440 steps).

Measured on a 2-core CPU, in evaluation mode, training error and loss of the final model
and its test error on the 360 test images. Full run, ``MPLBACKEND=Agg JDL_DOCS_FULL=1
python examples/02_understanding/plot_skip_connections_resnet.py``:

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
residual-20 (the curves are in ``benchmarks/results/depth_degradation_digits.json``). The
default run is the one on this page, and its numbers are printed below: after 66 steps
plain-32 has a far higher training error than plain-8 while residual-32 is no worse than
residual-8. The check after the figure fails the build if that stops being true.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

FULL = os.environ.get("JDL_DOCS_FULL") == "1"
CNN_DEPTHS, WIDTH, EPOCHS = ((20, 56), 16, 20) if FULL else ((8, 32), 8, 3)
train = jdl.data.load("digits", "train")
test = jdl.data.load("digits", "test")
cnn_steps = EPOCHS * (len(train) // 64)

# %%
# Plain vs residual on the digits images
# --------------------------------------
# The same architecture with and without its skip connections, the same optimiser, data
# order and number of steps. A callback keeps the loss of every training step.


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
# With the same budget, the deeper plain CifarResNet fits its *training* images far worse
# than the shallower one -- not overfitting but a failure to optimise -- while the deeper
# residual network trains as well as the shallower: skip connections remove the
# degradation, so depth can be added without making the network harder to train.
