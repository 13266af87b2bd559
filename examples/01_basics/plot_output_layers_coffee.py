"""
Output layers and the coffee problem
====================================

This tutorial shows how the output layer decides what a network can predict, on the
bundled ``"coffee"`` regression curve (coffee demand by time of day): a sigmoid output can
never exceed 1, a linear layer after the sigmoid can; two sigmoid units subtracted make a
bump; more hidden units make more bumps (fits at widths 1, 2, 4 and 16); and a wide
network is compared with a deep one of the same size.
"""

# %%
# The data
# --------
# ``jdl.data.load("coffee")`` gives 512 training and 128 test examples: ``x`` is the time
# of day as a fraction of 24 hours, ``y`` the demand — a low baseline plus four bumps
# (arrival, mid-morning, after lunch, afternoon) with a little noise.
# :func:`jdl.data.coffee_demand` is the noiseless curve.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import scipy.signal

import jdl

train = jdl.data.as_arrays(jdl.data.load("coffee", split="train"))
test = jdl.data.as_arrays(jdl.data.load("coffee", split="test"))
hours_grid = np.linspace(0, 24, 481)
truth = jdl.data.coffee_demand(hours_grid)


def to_input(hours):
    """Hours -> the network input: hours centred on noon, in units of 3 hours."""
    return ((np.asarray(hours, np.float32) - 12.0) / 3.0)[:, None]


# Inputs centred and scaled to about [-4, 4] so that a sigmoid unit with a moderate weight
# can switch on over an hour or so.
train_x, test_x = to_input(24 * train["x"][:, 0]), to_input(24 * test["x"][:, 0])


def fit(model, y, steps=3000, lr=2e-2, seed=0):
    """Full-batch Adam on the training set; returns the history."""
    return jdl.fit(
        model,
        (train_x, np.asarray(y, np.float32)),  # an (x, y) pair of arrays, as in Keras
        batch_size=len(train_x),
        optimizer=optax.adam(lr),
        loss="mse",
        steps=steps,
        seed=seed,
        verbose=0,
    )


def predict(model, history, hours):
    return np.asarray(model.apply(history.variables, to_input(hours), train=False)[:, 0])


fig, ax = plt.subplots(figsize=(6.5, 3))
ax.scatter(24 * train["x"][:, 0], train["y"][:, 0], s=5, color="0.6", label="training data")
ax.plot(hours_grid, truth, "k", lw=1.5, label="true demand")
ax.set(xlabel="time of day (hours)", ylabel="demand", title="The coffee problem")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# A sigmoid output cannot go above 1
# ----------------------------------
# Measure demand in *cups per hour*, peaking near 9 rather than 0.9. A model whose output
# unit is a sigmoid (``output_activation="sigmoid"``) squashes every prediction into
# :math:`(0, 1)` — however it is trained, it cannot reach the morning peak. Put the sigmoid
# in a hidden unit and let a *linear* output layer scale and shift it, and the output range
# is whatever the data needs.
cups = 10 * train["y"]
sigmoid_out = jdl.nn.MLP(widths=(), num_outputs=1, output_activation="sigmoid")
sigmoid_then_linear = jdl.nn.MLP(widths=(1,), num_outputs=1, activation="sigmoid")
h_a, h_b = fit(sigmoid_out, cups), fit(sigmoid_then_linear, cups)
pred_a = predict(sigmoid_out, h_a, hours_grid)
pred_b = predict(sigmoid_then_linear, h_b, hours_grid)
for name, pred, h in (("sigmoid output", pred_a, h_a), ("sigmoid + linear", pred_b, h_b)):
    print(f"{name:16s}: max prediction {pred.max():.3f}, MSE {h.metrics['loss'][-1]:.3f}")
assert pred_a.max() <= 1.0 < 2.0 < pred_b.max(), (pred_a.max(), pred_b.max())
assert h_b.metrics["loss"][-1] < 0.8 * h_a.metrics["loss"][-1], (h_a.metrics, h_b.metrics)

fig, ax = plt.subplots(figsize=(6.5, 3))
ax.scatter(24 * train["x"][:, 0], cups[:, 0], s=5, color="0.6", label="cups per hour")
ax.plot(hours_grid, pred_a, lw=2, label="output = sigmoid(w·x + b)")
ax.plot(hours_grid, pred_b, lw=2, label="output = a·sigmoid(w·x + b) + c")
ax.axhline(1.0, color="C0", ls=":", lw=1)
ax.set(
    xlabel="time of day (hours)",
    ylabel="cups per hour",
    title="A sigmoid output is capped at 1; a linear layer after it is not",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Both models are still a single step up (or down); one sigmoid can make one step.
#
# Two sigmoids make a bump
# ------------------------
# A step up at time :math:`a` minus a step up at a later time :math:`b` is a bump between
# :math:`a` and :math:`b`: :math:`h\,[\sigma(k(t - a)) - \sigma(k(t - b))]`. That is exactly
# a network with two sigmoid hidden units and a linear output with weights :math:`+h` and
# :math:`-h`. We set the weights by hand to cover the morning peak, 07:00–09:00.
bump = jdl.nn.MLP(widths=(2,), num_outputs=1, activation="sigmoid")
k, a, b, height = 6.0, to_input([7.0])[0, 0], to_input([9.0])[0, 0], 0.8
params = {
    "Dense_0": {"kernel": jnp.array([[k, k]]), "bias": jnp.array([-k * a, -k * b])},
    "head": {"kernel": jnp.array([[height], [-height]]), "bias": jnp.array([0.05])},
}
hand_made = np.asarray(bump.apply({"params": params}, to_input(hours_grid), train=False)[:, 0])
hidden = jax.nn.sigmoid(
    to_input(hours_grid) @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]
)

# sphinx_gallery_thumbnail_number = 3
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.plot(hours_grid, height * hidden[:, 0], "--", label="unit 1: step up at 07:00")
ax.plot(hours_grid, -height * hidden[:, 1], "--", label="unit 2: step down at 09:00")
ax.plot(hours_grid, hand_made, lw=2.5, label="their sum (+ bias): a bump")
ax.plot(hours_grid, truth, "k", lw=1, alpha=0.6, label="true demand")
ax.set(xlabel="time of day (hours)", ylabel="demand", title="Two sigmoid units make a bump")
ax.legend(fontsize=8)
fig.tight_layout()
peak_hour = hours_grid[np.argmax(hand_made)]
ends = hand_made[[0, -1]]
print(f"the bump: {hand_made.max():.2f} at {peak_hour:.1f} h, {ends.round(2)} at 0 h and 24 h")
assert 7.5 < peak_hour < 8.5 and hand_made.max() > 0.5 > 0.1 > ends.max(), (peak_hour, ends)

# %%
# More units, more bumps
# ----------------------
# With :math:`n` sigmoid hidden units the network can place up to :math:`n` steps — about
# :math:`n/2` bumps. The coffee curve has four bumps, so we expect one unit to give a single
# step, two units one bump, four units at most two, and 16 units enough for all four.
# Gradient descent finds the weights; each width is trained with the same budget.
widths = (1, 2, 4, 16)
fits = {}
for n in widths:
    model = jdl.nn.MLP(widths=(n,), num_outputs=1, activation="sigmoid")
    history = fit(model, train["y"], steps=4000)
    test_mse = jdl.evaluate(model, history.variables, (test_x, test["y"]), loss="mse")
    fits[n] = predict(model, history, hours_grid), test_mse["loss"]
    print(
        f"{n:2d} sigmoid units: {jdl.nn.count_params(history.variables):3d} parameters, "
        f"test MSE {test_mse['loss']:.5f}"
    )


def count_bumps(curve):
    """Local maxima that rise more than 0.02 above the valleys on either side."""
    return len(scipy.signal.find_peaks(curve, prominence=0.02)[0])


test_mses = [fits[n][1] for n in widths]
bumps = [count_bumps(fits[n][0]) for n in widths]
print(f"bumps per width: {dict(zip(widths, bumps, strict=True))}; true curve: {count_bumps(truth)}")
# Each extra unit buys a lower test error; n units never make more than n/2 bumps, and 16
# make all four, down to the noise floor (0.0009, below).
assert np.all(np.array(test_mses[1:]) < np.array(test_mses[:-1]) / 1.5), test_mses
assert bumps[:2] == [0, 1] and bumps[2] <= 2 and bumps[3] == 4, bumps
assert test_mses[-1] < 2 * 0.03**2, test_mses
fig, axes = plt.subplots(1, 4, figsize=(10, 3.3), sharey=True)
for ax, n in zip(axes, widths, strict=True):
    prediction, mse = fits[n]
    ax.scatter(24 * train["x"][:, 0], train["y"][:, 0], s=3, color="0.7", label="data")
    ax.plot(hours_grid, prediction, "C3", lw=2, label="network")
    ax.set_title(f"{n} hidden unit{'s' * (n > 1)}\ntest MSE {mse:.4f}", fontsize=10)
    ax.set_xlabel("hour")
    ax.legend(fontsize=9, loc="upper right")
axes[0].set_ylabel("demand")
fig.suptitle("Sigmoid units: more units, more bumps")
fig.tight_layout()

# %%
# The noise in the targets has variance :math:`0.03^2 = 0.0009`: a test MSE near that value
# means the network found the curve itself.
#
# Wide or deep?
# -------------
# The same number of parameters can be spent on one wide hidden layer or on several narrow
# ones. We compare, with ReLU units, one layer of 48 units (145 parameters) with three
# layers of 8 units (169 parameters). A ReLU unit makes a *kink*; one layer adds kinks
# side by side, while each further layer can fold the pieces made by the layer below, so
# the number of linear pieces can grow multiplicatively with depth.
shapes = {"wide: 1 × 48": (48,), "deep: 3 × 8": (8, 8, 8)}
best_of = {}
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.scatter(24 * train["x"][:, 0], train["y"][:, 0], s=4, color="0.7", label="data")
for name, hidden_widths in shapes.items():
    results = []
    for seed in range(2):  # two seeds: small nets depend on their initialisation
        model = jdl.nn.MLP(widths=hidden_widths, num_outputs=1, activation="relu")
        history = fit(model, train["y"], steps=2000, lr=1e-2, seed=seed)
        mse = jdl.evaluate(model, history.variables, (test_x, test["y"]), loss="mse")
        results.append((mse["loss"], seed, model, history))
    results.sort(key=lambda r: r[0])
    best_mse, _, model, history = results[0]
    best_of[name] = best_mse
    mses = ", ".join(f"{r[0]:.4f}" for r in sorted(results, key=lambda r: r[1]))
    print(f"{name}: {jdl.nn.count_params(history.variables)} parameters, test MSE per seed {mses}")
    ax.plot(
        hours_grid,
        predict(model, history, hours_grid),
        lw=2,
        label=f"{name} (best test MSE {best_mse:.4f})",
    )
ax.set(xlabel="time of day (hours)", ylabel="demand", title="Wide vs deep ReLU networks")
ax.legend(fontsize=8)
fig.tight_layout()
assert best_of["deep: 3 × 8"] < 0.3 * best_of["wide: 1 × 48"], best_of

# %%
# With the same training budget and about the same number of parameters, the deep network
# fits the four bumps far better than the wide one (compare the test MSEs printed above with
# the noise floor of 0.0009): its layers compose kinks into many pieces where one layer can
# only add them side by side. Its result also varies more from seed to seed, and deep nets
# need the care of the later tutorials (initialisation, normalisation, skip connections).
#
# Takeaway
# --------
# The output layer sets the range of what a network can predict: a sigmoid output lives in
# (0, 1), a linear output anywhere — so regression ends in a linear layer. Hidden sigmoid
# units are steps; two make a bump and :math:`n` units make about :math:`n/2` bumps, which
# is how a one-hidden-layer network approximates any smooth curve given enough units.
# Parameters can be spent on width or depth; depth composes pieces instead of adding them.
