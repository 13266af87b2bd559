"""
Skip connections and depth: plain vs residual MLPs
==================================================

This tutorial shows the *degradation problem* of He et al. (2016) on multilayer
perceptrons: with the same training budget, a plain BatchNorm-ReLU MLP gets a higher
*training* error the deeper it is, while the same MLP with residual connections
``h + f(h)`` does not; and the gradients at initialisation already show why. (The same
experiment on He et al.'s convolutional CifarResNets is the next tutorial,
:doc:`plot_skip_connections_resnet`.)

Deeper should never be worse: a deeper network could copy a shallower one and set its
extra layers to the identity. Yet plain networks *do* get worse with depth -- higher
*training* error, so it is not overfitting but optimisation. Residual connections make the
identity the default and remove the problem.

Setup: BatchNorm-ReLU MLPs (width 64) on MNIST-1D (4,000 training examples, 40 features,
10 classes), plain and residual; Adam, lr 3e-3, batch 100. The default run (the docs
build) trains 5 and 49 hidden layers for 200 steps each; ``JDL_DOCS_FULL=1`` trains 5, 17
and 49 hidden layers for 2,000 steps.

Measured on a 2-core CPU, training error of the final model on the whole training set
(evaluation mode). Full run, ``MPLBACKEND=Agg JDL_DOCS_FULL=1 python
examples/02_understanding/plot_skip_connections_mlp.py``:

============================  ========  ========  ========
MLP on MNIST-1D, 2,000 steps  5 layers  17        49
============================  ========  ========  ========
plain                         1.8 %     11.2 %    81.9 %
residual                      1.1 %     1.6 %     2.3 %
============================  ========  ========  ========

The default run is the one on this page, and its numbers are printed below: after 200
steps the 49-layer plain MLP already has a far higher training error than the 5-layer one,
while the residual ones differ much less. The checks after the figure fail the build if
that stops being true.
"""

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

FULL = os.environ.get("JDL_DOCS_FULL") == "1"
STEPS = 2000 if FULL else 200
a = jdl.data.as_arrays(jdl.data.load("mnist1d", "train"))
data = {"x": a["x"].astype(np.float32), "y": a["y"].astype(np.int32)}

# %%
# Plain vs residual BN-ReLU MLPs
# ------------------------------
# The same widths, initialisation, optimiser, data order and number of steps; the only
# difference is ``residual``.
depths = (5, 17, 49) if FULL else (5, 49)
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
# The plain nets get worse at every step in depth, the deepest far worse; the residual ones
# far less, if at all.
assert all(a + 0.05 < b for a, b in zip(plain_err[:-1], plain_err[1:], strict=True)), plain_err
assert plain_err[-1] > plain_err[0] + 0.3, plain_err
assert max(residual_err) - min(residual_err) < 0.25 * (plain_err[-1] - plain_err[0]), error
assert residual_err[-1] < plain_err[-1] - 0.3, error

# %%
# Why: the gradient flow of the two 49-layer networks
# ---------------------------------------------------
# The norm of the loss gradient for each layer's weights at initialisation, on one batch.
batch = {"x": data["x"][:256], "y": data["y"][:256]}
first_over_last, flows = {}, {}
for residual in (False, True):
    model = jdl.nn.MLP(
        widths=(64,) * 49, num_outputs=10, batch_norm=True, residual=residual, kernel_init="he"
    )
    v = model.init(jax.random.key(0), batch["x"][:1], train=False)
    flow = jdl.analysis.gradient_flow(model, v, batch, "cross_entropy")
    print("residual" if residual else "plain", "-", flow.summary().splitlines()[0])
    flows[residual] = [layer.grad_norm for layer in flow.layers]
    first_over_last[residual] = flow.layers[0].grad_norm / flow.layers[-1].grad_norm

fig, ax = plt.subplots(figsize=(6, 4))
for residual, norms in flows.items():
    ax.semilogy(np.arange(1, len(norms) + 1), norms, label="residual" if residual else "plain")
ax.set_xlabel("layer (input to output)")
ax.set_ylabel("gradient norm at initialisation")
ax.set_title("49-layer BN-ReLU MLPs on MNIST-1D")
ax.legend()
plt.show()
# The plain net's first layer gets gradients thousands of times larger than its last; the
# residual net's are within an order of magnitude of each other.
assert first_over_last[False] > 100 and 0.01 < first_over_last[True] < 10, first_over_last

# %%
# Takeaway
# --------
# With the same budget, the plain MLP's training error rises with depth while the residual
# one's does not: skip connections make very deep networks as easy to optimise as shallow
# ones. The deep plain network is not overfitting -- it fits its *training* data worse --
# and its gradients at initialisation already show why: they are badly out of balance
# across layers, while the residual network's stay within an order of magnitude.
