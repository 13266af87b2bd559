"""
Classification outputs and their losses
=======================================

This tutorial shows how the question a network answers picks its output layer and its
loss: one sigmoid output with binary cross-entropy for a yes/no question (the classic
"cat or not cat" — here "is this digit a zero?"), a softmax over ten outputs with
cross-entropy for "which digit is it?", and a linear output with mean squared or mean
absolute error for a number. It also shows *why*: what goes wrong with a squared error on a
probability, and how MSE and MAE react to outliers.
"""

# %%
# Yes or no: one sigmoid output, binary cross-entropy
# ---------------------------------------------------
# For a yes/no question the network outputs one number, the *logit* :math:`z`; the
# probability of "yes" is :math:`p = \sigma(z)`. The loss is the binary cross-entropy
#
# .. math:: \mathrm{BCE}(z, y) = -\,[\,y \log \sigma(z) + (1 - y) \log(1 - \sigma(z))\,],
#
# the negative log-probability the model gives to the right answer.
# :func:`jdl.losses.binary_cross_entropy` takes the *logits* (not probabilities) and
# computes it in a form that never overflows. We ask "is this digit a zero?" on the bundled
# 8×8 ``"digits"``.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

train = jdl.data.as_arrays(jdl.data.load("digits", split="train"))
test = jdl.data.as_arrays(jdl.data.load("digits", split="test"))


is_zero_train = (train["y"] == 0).astype(np.float32)
is_zero_test = (test["y"] == 0).astype(np.float32)
print(f"zeros: {is_zero_train.mean():.1%} of the training set")

z, y = jnp.array([2.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 0.0])
p = jax.nn.sigmoid(z)
by_hand = -jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))
print(
    f"BCE by hand {float(by_hand):.6f} = jdl.losses.binary_cross_entropy "
    f"{float(jdl.losses.binary_cross_entropy(z, y)):.6f}"
)
assert jnp.allclose(by_hand, jdl.losses.binary_cross_entropy(z, y), atol=1e-6), by_hand

binary_model = jdl.nn.MLP(widths=(32,), num_outputs=1)
history = jdl.fit(
    binary_model,
    (train["x"], is_zero_train),
    batch_size=64,
    optimizer=optax.adam(1e-3),
    loss="binary_cross_entropy",
    epochs=10,
    validation=(test["x"], is_zero_test),
    verbose=0,
)
print(
    "test:",
    {k: round(v, 4) for k, v in history.metrics.items() if k.startswith("val") for v in [v[-1]]},
)
always_no = 1 - is_zero_test.mean()  # the accuracy of answering "no" every time
binary_accuracy = history.metrics["val_binary_accuracy"][-1]
print(f"always answering no: {always_no:.1%} test accuracy; the model: {binary_accuracy:.1%}")
assert binary_accuracy > always_no + 0.05, (binary_accuracy, always_no)

# %%
# ``fit`` reports the binary accuracy (a logit above 0 means "yes"). Note that with 10 %
# zeros, answering "no" every time is already 90 % accurate: look at the loss, too.
#
# Why not a squared error on the probability?
# -------------------------------------------
# Take an example whose answer is "yes" (:math:`y = 1`) and which the model gets badly
# wrong (:math:`z \ll 0`). The gradient of the BCE with respect to the logit is
# :math:`\sigma(z) - y`, close to :math:`-1`: a strong push in the right direction. The
# gradient of the squared error :math:`(\sigma(z) - y)^2` carries an extra factor
# :math:`\sigma'(z) = \sigma(z)(1 - \sigma(z))`, which vanishes when the sigmoid saturates —
# the more wrong the model, the less it learns.
logit = jnp.linspace(-8, 8, 401)
bce = lambda z: jdl.losses.binary_cross_entropy(z[None], jnp.ones(1))
sq = lambda z: (jax.nn.sigmoid(z) - 1.0) ** 2
fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(9, 3.3))
for name, fn in (("binary cross-entropy", bce), ("squared error on σ(z)", sq)):
    ax_l.plot(logit, jax.vmap(fn)(logit), label=name)
    ax_g.plot(logit, jax.vmap(jax.grad(fn))(logit), label=name)
ax_l.set(xlabel="logit z (true label y = 1)", ylabel="loss", title="Loss of a positive example")
ax_g.set(
    xlabel="logit z (true label y = 1)",
    ylabel="d loss / d z",
    title="Its gradient: BCE keeps pushing",
)
for ax in (ax_l, ax_g):
    ax.legend(fontsize=8)
fig.tight_layout()
grad_bce, grad_sq = float(jax.grad(bce)(-8.0)), float(jax.grad(sq)(-8.0))
print(f"gradient at z = -8 (badly wrong): BCE {grad_bce:.4f}, squared error {grad_sq:.2e}")
assert grad_bce < -0.99 and abs(grad_sq) < 0.01 * abs(grad_bce), (grad_bce, grad_sq)

# %%
# One of ten: softmax and cross-entropy
# -------------------------------------
# For "which digit?" the network outputs ten logits, softmax turns them into a probability
# for each class, and the cross-entropy is :math:`-\log p_{\text{true class}}`.
# :func:`jdl.losses.cross_entropy` takes logits and integer labels (or one-hot targets).
# A freshly initialised network gives every class about the same probability, so its loss
# starts near :math:`\ln 10 \approx 2.303` — a quick sanity check for any classifier.
model = jdl.nn.MLP(widths=(64,), num_outputs=10)
initial = jdl.train.create_state(model, optax.adam(1e-3), {"x": train["x"][:1]}, seed=0)
start = jdl.evaluate(model, initial.variables, (test["x"], test["y"]))
print(
    f"loss at initialisation {start['loss']:.3f} (ln 10 = {np.log(10):.3f}), "
    f"accuracy {start['accuracy']:.1%}"
)
assert abs(start["loss"] - np.log(10)) < 0.2, start

history = jdl.fit(
    model,
    (train["x"], train["y"]),
    batch_size=64,
    optimizer=optax.adam(1e-3),
    loss="cross_entropy",
    epochs=15,
    validation=(test["x"], test["y"]),
    verbose=0,
)
print(
    f"after training: test loss {history.metrics['val_loss'][-1]:.3f}, "
    f"test accuracy {history.metrics['val_accuracy'][-1]:.1%}"
)
assert history.metrics["val_accuracy"][-1] > 0.85, history.metrics["val_accuracy"][-1]

probs = jax.nn.softmax(model.apply(history.variables, test["x"][:4], train=False))
# sphinx_gallery_thumbnail_number = 2
fig, axes = plt.subplots(2, 4, figsize=(9, 4.4), gridspec_kw={"height_ratios": [1.2, 1]})
for i in range(4):
    axes[0, i].imshow(test["x"][i, :, :, 0], cmap="gray_r")
    axes[0, i].set(title=f"label {test['y'][i]}", xticks=[], yticks=[])
    axes[1, i].bar(
        range(10),
        probs[i],
        color=["C3" if c == test["y"][i] else "C0" for c in range(10)],
    )
    axes[1, i].set(xticks=range(10), xlabel="class", ylim=(0, 1))
axes[1, 0].set_ylabel("softmax probability")
fig.suptitle("Softmax outputs of the trained digit classifier (true class in red)")
fig.tight_layout()

# %%
# Numbers: a linear output, MSE or MAE
# ------------------------------------
# To predict a number the output layer is linear (no squashing, see the coffee tutorial)
# and the loss measures the distance to the target: the mean squared error
# (:func:`jdl.losses.mse`) or the mean absolute error (:func:`jdl.losses.mae`). The best
# constant under MSE is the *mean* of the targets, under MAE the *median*; so MSE is pulled
# by outliers and MAE is not. We fit a straight line to data with 10 % gross outliers.
rng = np.random.default_rng(0)
x_line = rng.uniform(-1, 1, (200, 1)).astype(np.float32)
y_line = (2 * x_line + 1 + 0.1 * rng.normal(size=(200, 1))).astype(np.float32)
outliers = rng.random(200) < 0.1
y_line[outliers] += 6.0

line_fits = {}
for loss_name in ("mse", "mae"):
    line = jdl.nn.MLP(widths=(), num_outputs=1)  # a single linear layer: w x + b
    h = jdl.fit(
        line,
        (x_line, y_line),
        batch_size=200,
        optimizer=optax.adam(5e-2),
        loss=loss_name,
        steps=600,
        verbose=0,
    )
    w = float(h.variables["params"]["head"]["kernel"][0, 0])
    b = float(h.variables["params"]["head"]["bias"][0])
    line_fits[loss_name] = (w, b)
    print(f"{loss_name}: y = {w:.2f} x + {b:.2f}   (clean data: y = 2 x + 1)")
# MAE recovers the clean line; MSE's intercept is pulled up by the outliers (by 0.31 here:
# 11 of the 200 points are 6 too high, and the mean follows them).
(w_mse, b_mse), (w_mae, b_mae) = line_fits["mse"], line_fits["mae"]
assert abs(w_mae - 2) < 0.15 and abs(b_mae - 1) < 0.1, line_fits
assert b_mse - 1 > 0.2 and b_mse - 1 > 2 * abs(b_mae - 1), line_fits

grid = np.linspace(-1, 1, 2)
fig, ax = plt.subplots(figsize=(6, 3.3))
ax.scatter(x_line[~outliers, 0], y_line[~outliers, 0], s=6, color="0.6", label="data")
ax.scatter(x_line[outliers, 0], y_line[outliers, 0], s=10, color="k", marker="x", label="outliers")
for loss_name, (w, b) in line_fits.items():
    ax.plot(grid, w * grid + b, lw=2, label=f"fitted with {loss_name.upper()}")
ax.set(xlabel="x", ylabel="y", title="MSE is pulled by outliers, MAE is not")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Takeaway
# --------
# Choose the output layer and the loss from the question:
#
# .. list-table::
#    :header-rows: 1
#
#    * - question
#      - output layer
#      - loss (jdl name)
#    * - yes / no (cat or not cat)
#      - 1 unit, sigmoid
#      - binary cross-entropy (``"binary_cross_entropy"``)
#    * - one of C classes
#      - C units, softmax
#      - cross-entropy (``"cross_entropy"``), starts near ln C
#    * - a number
#      - linear
#      - ``"mse"`` (the mean), ``"mae"`` (the median, robust to outliers)
#
# jdl's classification losses take logits and apply the sigmoid or softmax themselves, in a
# numerically stable form; cross-entropy keeps a strong gradient exactly where a squared
# error on a probability would stall.
