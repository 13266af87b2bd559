"""
Skip connections and depth (He et al. 2016)
===========================================

Deeper should never be worse: a deeper network could copy a shallower one and set its
extra layers to the identity. Yet plain networks *do* get worse with depth -- higher
*training* error, so it is not overfitting but optimisation (the "degradation problem").
Residual connections ``h + f(h)`` make the identity the default and remove it. Here:
BatchNorm-ReLU MLPs on MNIST-1D (4,000 training examples, 40 features, 10 classes) at
depths 5, 17 and 49, plain vs residual, same budget (Adam, lr 3e-3, batch 100).

Default budget: 300 steps per network. ``JDL_DOCS_FULL=1``: 2,000 steps, and the image
experiment -- ``CifarResNet(plain=True)`` vs residual at 20 and 56 layers on the bundled
digits images (8 x 8, 1,437 training images), trained with :func:`jdl.fit`.
"""

# %%
import os

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

# %%
# Why: the gradient flow of the two 49-layer networks at initialisation.
batch = {"x": data["x"][:256], "y": data["y"][:256]}
for residual in (False, True):
    model = jdl.nn.MLP(
        widths=(64,) * 49, num_outputs=10, batch_norm=True, residual=residual, kernel_init="he"
    )
    import jax

    v = model.init(jax.random.key(0), batch["x"][:1], train=False)
    flow = jdl.analysis.gradient_flow(model, v, batch, "cross_entropy")
    print("residual" if residual else "plain", "-", flow.summary().splitlines()[0])

# %%
# CifarResNet: plain vs residual (``JDL_DOCS_FULL=1`` only)
# ---------------------------------------------------------
if FULL:
    train = jdl.data.load("digits", "train")
    for depth in (20, 56):
        for plain in (True, False):
            hist = jdl.fit(
                jdl.nn.CifarResNet(depth=depth, plain=plain),
                train,
                batch_size=64,
                optimizer=optax.sgd(0.05, momentum=0.9),
                loss="cross_entropy",
                epochs=10,
                verbose=0,
            )
            print(
                f"CifarResNet-{depth} {'plain' if plain else 'residual'}: final train "
                f"loss {hist.metrics['loss'][-1]:.3f}"
            )

# %%
# Takeaway
# --------
# With the same budget, the plain network's training error rises with depth while the
# residual one's does not: skip connections make very deep networks as easy to optimise as
# shallow ones.
