"""
Backpropagation by hand, checked against jax.grad
=================================================

This tutorial computes the gradient of a three-layer network's loss by hand — the chain
rule applied layer by layer from the output back to the input — and shows that it matches
``jax.grad`` to float precision for every weight and bias, and a finite-difference estimate
too. Backpropagation is nothing more than this bookkeeping; ``jax.grad`` does it for any
function.
"""

# %%
# The network and its forward pass
# --------------------------------
# A :class:`jdl.nn.MLP` with two hidden tanh layers (8 and 6 units) and a 3-way output, on
# a batch of 30 standardised Iris flowers:
#
# .. math::
#    z_1 = x W_1 + b_1,\quad a_1 = \tanh z_1,\qquad
#    z_2 = a_1 W_2 + b_2,\quad a_2 = \tanh z_2,\qquad
#    z_3 = a_2 W_3 + b_3,
#
# and the loss is the mean softmax cross-entropy
# :math:`L = -\frac{1}{N}\sum_n \log \mathrm{softmax}(z_3)_{n, y_n}`. The forward pass keeps
# every intermediate value: the backward pass needs them.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jdl

data = jdl.data.as_arrays(jdl.data.load("iris", split="train"))
x = (data["x"] - data["x"].mean(axis=0)) / data["x"].std(axis=0)
x, y = jnp.asarray(x[:30]), jnp.asarray(data["y"][:30])

model = jdl.nn.MLP(widths=(8, 6), num_outputs=3, activation="tanh")
params = model.init(jax.random.key(0), x, train=False)["params"]
W1, b1 = params["Dense_0"]["kernel"], params["Dense_0"]["bias"]
W2, b2 = params["Dense_1"]["kernel"], params["Dense_1"]["bias"]
W3, b3 = params["head"]["kernel"], params["head"]["bias"]

z1 = x @ W1 + b1
a1 = jnp.tanh(z1)
z2 = a1 @ W2 + b2
a2 = jnp.tanh(z2)
z3 = a2 @ W3 + b3
p = jax.nn.softmax(z3)
N = x.shape[0]
loss = -jnp.mean(jnp.log(p[jnp.arange(N), y]))
jdl_loss = jdl.losses.cross_entropy(model.apply({"params": params}, x, train=False), y)
print(f"loss by hand {float(loss):.6f}, jdl.losses.cross_entropy {float(jdl_loss):.6f}")
assert abs(float(loss) - float(jdl_loss)) < 1e-5, (float(loss), float(jdl_loss))

# %%
# The backward pass
# -----------------
# Go backwards through the same equations, multiplying by each step's local derivative:
#
# 1. Softmax and cross-entropy together have the simple derivative
#    :math:`\partial L / \partial z_3 = (p - \mathrm{onehot}(y)) / N`.
# 2. For a dense layer :math:`z = a W + b`: :math:`\partial L/\partial W = a^\top
#    \partial L/\partial z`, :math:`\partial L/\partial b = \sum_n \partial L/\partial z_n`,
#    and the gradient flows on to the layer's input as :math:`\partial L/\partial a =
#    \partial L/\partial z\, W^\top`.
# 3. Through :math:`a = \tanh z` it is multiplied element-wise by
#    :math:`\tanh'(z) = 1 - a^2`.
dz3 = (p - jax.nn.one_hot(y, 3)) / N
dW3, db3 = a2.T @ dz3, dz3.sum(axis=0)
da2 = dz3 @ W3.T
dz2 = da2 * (1 - a2**2)
dW2, db2 = a1.T @ dz2, dz2.sum(axis=0)
da1 = dz2 @ W2.T
dz1 = da1 * (1 - a1**2)
dW1, db1 = x.T @ dz1, dz1.sum(axis=0)

by_hand = {
    "Dense_0": {"kernel": dW1, "bias": db1},
    "Dense_1": {"kernel": dW2, "bias": db2},
    "head": {"kernel": dW3, "bias": db3},
}

# %%
# Checked against ``jax.grad``
# ----------------------------
# ``jax.grad`` differentiates the same loss written with the model and the jdl loss — no
# hand-written derivative anywhere — by reverse-mode automatic differentiation, which is
# backpropagation done by the computer.


def loss_fn(params):
    return jdl.losses.cross_entropy(model.apply({"params": params}, x, train=False), y)


auto = jax.grad(loss_fn)(params)
print(f"{'parameter':16s} {'shape':>8s} {'max |hand − jax|':>18s} {'max |grad|':>11s}")
for layer in ("Dense_0", "Dense_1", "head"):
    for name in ("kernel", "bias"):
        diff = float(jnp.max(jnp.abs(by_hand[layer][name] - auto[layer][name])))
        size = float(jnp.max(jnp.abs(auto[layer][name])))
        shape = "×".join(map(str, auto[layer][name].shape))
        print(f"{layer + '/' + name:16s} {shape:>8s} {diff:18.2e} {size:11.2e}")
        assert diff <= 1e-5 * max(size, 1e-3), (layer, name, diff)

# %%
# The differences are float32 round-off (about :math:`10^{-8}`), against gradients of order
# :math:`10^{-1}`: the hand-derived gradient *is* the gradient.
#
# A third opinion: finite differences
# -----------------------------------
# Nudging a single weight by :math:`\pm\varepsilon` and re-evaluating the loss estimates
# its partial derivative, :math:`(L(\theta + \varepsilon) - L(\theta - \varepsilon)) /
# 2\varepsilon`. It needs two forward passes *per parameter* — hopeless for millions of
# them, which is exactly why backpropagation (one backward pass for all of them) matters —
# but it is the classic way to test a gradient implementation. In float64:
jax.config.update("jax_enable_x64", True)
model64 = jdl.nn.MLP(
    widths=(8, 6), num_outputs=3, activation="tanh", dtype=jnp.float64, param_dtype=jnp.float64
)
params64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), params)
x64 = jnp.asarray(x, jnp.float64)


def loss64(params):
    return jdl.losses.cross_entropy(model64.apply({"params": params}, x64, train=False), y)


eps = 1e-6
for layer, name, index in (
    ("Dense_0", "kernel", (2, 5)),
    ("Dense_1", "bias", (3,)),
    ("head", "kernel", (4, 1)),
):
    plus = jax.tree_util.tree_map(lambda v: v, params64)
    minus = jax.tree_util.tree_map(lambda v: v, params64)
    plus[layer][name] = plus[layer][name].at[index].add(eps)
    minus[layer][name] = minus[layer][name].at[index].add(-eps)
    numeric = float((loss64(plus) - loss64(minus)) / (2 * eps))
    hand = float(by_hand[layer][name][index])
    print(f"{layer}/{name}{list(index)}: finite difference {numeric:+.7f}, by hand {hand:+.7f}")
    # The hand gradient is float32 (round-off ~1e-8); the estimate's error is ~eps^2.
    assert abs(numeric - hand) < 1e-6 + 1e-4 * abs(hand), (layer, name, numeric, hand)
jax.config.update("jax_enable_x64", False)

# %%
# Every gradient entry, hand against automatic
# --------------------------------------------
fig, (ax_s, ax_b) = plt.subplots(1, 2, figsize=(10, 3.8))
norms_hand, norms_auto = [], []
for k, layer in enumerate(("Dense_0", "Dense_1", "head")):
    hand = np.concatenate([np.ravel(by_hand[layer][n]) for n in ("kernel", "bias")])
    jaxg = np.concatenate([np.ravel(auto[layer][n]) for n in ("kernel", "bias")])
    ax_s.scatter(jaxg, hand, s=12, color=f"C{k}", label=f"{layer} ({hand.size} entries)")
    norms_hand.append(np.linalg.norm(hand))
    norms_auto.append(np.linalg.norm(jaxg))
lim = np.max(np.abs(ax_s.get_xlim()))
ax_s.plot([-lim, lim], [-lim, lim], "k:", lw=1, label="y = x")
ax_s.set(xlabel="jax.grad", ylabel="by hand", title="Each gradient entry")
ax_s.legend(fontsize=9)
positions = np.arange(3)
ax_b.bar(positions - 0.2, norms_hand, width=0.4, label="by hand")
ax_b.bar(positions + 0.2, norms_auto, width=0.4, label="jax.grad")
ax_b.set(
    xticks=positions,
    xticklabels=["Dense_0", "Dense_1", "head"],
    ylabel="gradient norm",
    title="Gradient norm per layer",
)
ax_b.legend(fontsize=9)
fig.tight_layout()

# %%
# The backward pass also shows where vanishing gradients come from: on its way to the
# input, the gradient is multiplied by every layer's :math:`W^\top` and every tanh's
# :math:`1 - a^2 \le 1`. In three layers that barely matters — here the norms mostly reflect
# how many entries each layer has — but over tens of saturating layers the factors compound
# (see the tutorials on initialisation and vanishing gradients).
#
# Takeaway
# --------
# Backpropagation is the chain rule evaluated from the loss backwards, reusing the values
# stored by the forward pass: for each dense layer, ``dW = aᵀ dz``, ``db = Σ dz`` and
# ``da = dz Wᵀ``; for each activation, multiply by its derivative. Written out for a
# three-layer network it matches ``jax.grad`` to float precision (and finite differences),
# and it costs one backward pass for all parameters at once — which is why we never write
# it by hand again.
