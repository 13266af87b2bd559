"""
A single layer: Wx + b, collapsing linear layers, non-linearities
==================================================================

This tutorial shows what one dense layer computes (``x @ W + b``), proves numerically that a
stack of dense layers *without* non-linearities is one dense layer in disguise — and so
cannot fit a curve any better than a straight line — and plots the non-linearities that
break the collapse: sigmoid, tanh, ReLU, leaky ReLU and softmax.
"""

# %%
# One dense layer
# ---------------
# A dense (fully connected) layer maps an input vector :math:`x \in \mathbb{R}^{n}` to
# :math:`y = x W + b` with a weight matrix :math:`W \in \mathbb{R}^{n \times m}` and a bias
# :math:`b \in \mathbb{R}^{m}`. In Flax it is ``flax.linen.Dense``; its variables are a
# ``kernel`` (:math:`W`) and a ``bias``. Rows of a batch are examples, so a batch
# :math:`X` of shape ``(batch, n)`` maps to :math:`X W + b` of shape ``(batch, m)``.
import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

layer = nn.Dense(features=3)
x = jax.random.normal(jax.random.key(0), (5, 4))  # a batch of 5 inputs with 4 features
variables = layer.init(jax.random.key(1), x)
W, b = variables["params"]["kernel"], variables["params"]["bias"]
print("kernel W:", W.shape, " bias b:", b.shape)

by_hand = x @ W + b
print("max |layer(x) - (x W + b)| =", float(jnp.max(jnp.abs(layer.apply(variables, x) - by_hand))))
assert jnp.allclose(layer.apply(variables, x), by_hand, atol=1e-6)

# %%
# Stacked linear layers collapse into one
# ---------------------------------------
# Put three dense layers in a row with no activation in between (``activation="linear"``):
#
# .. math:: y = ((x W_0 + b_0) W_1 + b_1) W_2 + b_2
#           = x \underbrace{W_0 W_1 W_2}_{W} + \underbrace{(b_0 W_1 + b_1) W_2 + b_2}_{b}.
#
# The product of matrices is a matrix, so the three layers compute exactly what a single
# layer with the weights :math:`W` and :math:`b` computes. We check it on a
# :class:`jdl.nn.MLP` with two hidden layers of 16 units.
deep_linear = jdl.nn.MLP(widths=(16, 16), num_outputs=2, activation="linear")
params = deep_linear.init(jax.random.key(2), x, train=False)["params"]
layers = [params["Dense_0"], params["Dense_1"], params["head"]]

W_total = layers[0]["kernel"] @ layers[1]["kernel"] @ layers[2]["kernel"]
b_total = (layers[0]["bias"] @ layers[1]["kernel"] + layers[1]["bias"]) @ layers[2][
    "kernel"
] + layers[2]["bias"]

deep_out = deep_linear.apply({"params": params}, x, train=False)
single_out = x @ W_total + b_total
print("3 linear layers:", jdl.nn.count_params(params), "parameters")
print("the single equivalent layer:", W_total.size + b_total.size, "parameters")
print("max |deep(x) - single(x)| =", float(jnp.max(jnp.abs(deep_out - single_out))))
assert jnp.allclose(deep_out, single_out, atol=1e-5), float(jnp.max(jnp.abs(deep_out - single_out)))
assert (jdl.nn.count_params(params), W_total.size + b_total.size) == (386, 10)

# %%
# The difference is float32 round-off: 386 parameters describe the same function as 10.
#
# What this means for fitting
# ---------------------------
# A deep *linear* network can only ever draw a straight line through one-dimensional data.
# We fit the bundled ``"coffee"`` curve (coffee demand by time of day, a sum of bumps)
# with a linear net of three 32-unit layers and with the same network using ReLU, and
# compare both with the best straight line (least squares).
data = jdl.data.as_arrays(jdl.data.load("coffee", split="train"))
hours = 24 * data["x"][:, 0]
order = np.argsort(hours)


# The input is the hour centred on noon, in units of 3 hours (about -4 to 4).
inputs = ((hours - 12.0) / 3.0)[:, None].astype(np.float32)
train = jdl.data.from_arrays(inputs, data["y"])  # a data source over two arrays


def fit_curve(activation: str, steps: int = 1500):
    model = jdl.nn.MLP(widths=(32, 32, 32), num_outputs=1, activation=activation)
    history = jdl.fit(
        model,
        train,
        batch_size=len(train),  # full batch: one step per epoch
        optimizer=optax.adam(1e-2),
        loss="mse",
        steps=steps,
        verbose=0,
    )
    prediction = model.apply(history.variables, inputs, train=False)[:, 0]
    return np.asarray(prediction), history.metrics["loss"][-1]


linear_fit, linear_mse = fit_curve("linear")
relu_fit, relu_mse = fit_curve("relu")
A = np.c_[inputs[:, 0], np.ones(len(hours))]
line = A @ np.linalg.lstsq(A, data["y"][:, 0], rcond=None)[0]
line_mse = float(np.mean((line - data["y"][:, 0]) ** 2))
print(
    f"MSE  least-squares line {line_mse:.4f} | deep linear net {linear_mse:.4f} | "
    f"ReLU net {relu_mse:.4f}"
)
# The deep linear net is no better than the best straight line (it cannot be: it *is* a
# line) and ends within 1 % of it; the ReLU net is an order of magnitude better.
assert line_mse - 1e-5 <= linear_mse < 1.01 * line_mse, (line_mse, linear_mse)
assert relu_mse < 0.1 * line_mse, (relu_mse, line_mse)

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.scatter(hours, data["y"][:, 0], s=6, color="0.6", label="coffee data")
ax.plot(hours[order], line[order], "k:", lw=2, label=f"least-squares line (MSE {line_mse:.4f})")
ax.plot(hours[order], linear_fit[order], lw=2, label=f"3 linear layers (MSE {linear_mse:.4f})")
ax.plot(hours[order], relu_fit[order], lw=2, label=f"3 ReLU layers (MSE {relu_mse:.4f})")
ax.set(
    xlabel="time of day (hours)",
    ylabel="coffee demand",
    title="Depth without non-linearity is still a line",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# The linear network lands on the least-squares line (up to how far 1,500 Adam steps get);
# the same architecture with ReLUs follows the bumps.
#
# Non-linearities
# ---------------
# An activation function applied element-wise after each dense layer stops the collapse.
# The common ones, all available by name through :func:`jdl.nn.get_activation`:
#
# - **sigmoid** :math:`\sigma(z) = 1 / (1 + e^{-z})` squashes into :math:`(0, 1)`; its
#   slope is at most 1/4 and vanishes for large :math:`|z|` (saturation).
# - **tanh** squashes into :math:`(-1, 1)`, is zero-centred, slope at most 1.
# - **ReLU** :math:`\max(0, z)`: slope exactly 1 or 0 — no saturation for positive inputs,
#   but a unit whose input is always negative never changes again ("dead").
# - **leaky ReLU** :math:`\max(\alpha z, z)` keeps a small slope :math:`\alpha` for negative
#   inputs (jdl's ``"leaky_relu"`` uses :math:`\alpha = 0.01`; the plot uses 0.1 so the
#   slope is visible).
z = jnp.linspace(-5, 5, 401)
activations = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "ReLU": jax.nn.relu,
    "leaky ReLU (α=0.1)": lambda v: jax.nn.leaky_relu(v, negative_slope=0.1),
}
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.5))
for name, fn in activations.items():
    ax_f.plot(z, fn(z), label=name)
    ax_d.plot(z, jax.vmap(jax.grad(fn))(z), label=name)
ax_f.set(xlabel="z", ylabel="f(z)", title="Activation functions", ylim=(-1.5, 3))
ax_d.set(xlabel="z", ylabel="f'(z)", title="Their derivatives")
for ax in (ax_f, ax_d):
    ax.axhline(0, color="0.8", lw=0.8)
    ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Softmax
# -------
# Softmax is not element-wise: it turns a whole vector of scores (*logits*)
# :math:`z \in \mathbb{R}^{C}` into probabilities,
# :math:`\mathrm{softmax}(z)_i = e^{z_i} / \sum_j e^{z_j}`. The outputs are positive and sum
# to one, adding a constant to every logit changes nothing, and scaling the logits (the
# inverse of a "temperature") makes the distribution sharper or flatter. It belongs at the
# output of a classifier (see the next tutorials), not between hidden layers.
logits = jnp.array([2.0, 1.0, 0.1, -1.0])
p = jax.nn.softmax(logits)
print("softmax(z)      =", [round(float(v), 3) for v in p], " sum =", round(float(p.sum()), 6))
print("softmax(z + 10) =", [round(float(v), 3) for v in jax.nn.softmax(logits + 10)])
assert jnp.all(p > 0) and abs(float(p.sum()) - 1) < 1e-6, p
assert jnp.allclose(jax.nn.softmax(logits + 10), p, atol=1e-6)
peaks = [float(jax.nn.softmax(scale * logits).max()) for scale in (0.5, 1.0, 3.0)]
assert peaks[0] < peaks[1] < peaks[2], peaks  # larger logits (lower temperature): sharper

fig, ax = plt.subplots(figsize=(6, 3))
classes = np.arange(len(logits))
for k, scale in enumerate((0.5, 1.0, 3.0)):
    ax.bar(
        classes + (k - 1) * 0.27,
        jax.nn.softmax(scale * logits),
        width=0.27,
        label=f"softmax({scale} · z)",
    )
ax.set(
    xticks=classes,
    xticklabels=[f"class {c}\n(z={v:g})" for c, v in enumerate(logits)],
    ylabel="probability",
    title="Softmax of the logits z at three temperatures",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Takeaway
# --------
# A dense layer is an affine map ``x @ W + b``. Any number of them in a row is still one
# affine map — the three-layer linear network above equals a single layer to float
# precision and fits the coffee curve no better than a straight line. Non-linear
# activations (sigmoid, tanh, ReLU, leaky ReLU) between the layers are what give depth its
# power; softmax is the output-side non-linearity that turns scores into probabilities.
