"""
Initialisation: Glorot & Bengio (2010)
======================================

This tutorial reproduces the core of Glorot & Bengio's "Understanding the difficulty of
training deep feedforward neural networks" with :func:`jdl.analysis.compare_inits`: a
5-layer tanh MLP on the digits inputs under four initialisers -- their "standard"
U(-1/sqrt(n), 1/sqrt(n)), their normalised init (``"glorot"``), N(0, 1) and N(0, 0.01^2) --
and shows the mean singular value of the layer Jacobians, the back-propagated gradients,
saturation and the scale of the activations, layer by layer.

The paper uses width 1000; by default this script uses width 256 (the numbers hardly depend
on the width). Set ``JDL_DOCS_FULL=1`` for width 1000 (3 min on a 2-core CPU). At either
width the script checks the paper's findings, and prints the measured values next to the
ranges it accepts: the mean Jacobian singular value is well below 1 under the standard
init and closer to 1 under Glorot's (the paper reports 0.5 and 0.8); the
back-propagated gradient fades from layer 5 to layer 1 under the standard init and stays
flat under Glorot's; N(0, 1) saturates most tanh units; under N(0, 0.01^2) the signal
shrinks layer by layer and the first two layers' gradients read "vanishing".
"""

# %%
# Data and model
# --------------
import os

import matplotlib.pyplot as plt
import numpy as np

import jdl

FULL = os.environ.get("JDL_DOCS_FULL") == "1"
WIDTH = 1000 if FULL else 256

digits = jdl.data.as_arrays(jdl.data.load("digits", "train"))
x = digits["x"].reshape(len(digits["x"]), -1).astype(np.float32) / 16.0
batch = {"x": x[:256], "y": digits["y"][:256]}
model = jdl.nn.MLP(widths=(WIDTH,) * 5, num_outputs=10, activation="tanh")

# %%
# Four initialisers, side by side
# -------------------------------
# ``compare_inits`` re-initialises the same network with each ``kernel_init`` and runs
# :func:`jdl.analysis.gradient_flow` on one batch; for plain Dense/tanh stacks it also
# computes the singular values of the Jacobians ``J_k = diag(tanh'(z_k)) W_k^T``.
cmp = jdl.analysis.compare_inits(
    model,
    {
        "standard": "standard",
        "glorot": "glorot",
        "N(0, 1)": "normal(1.0)",
        "N(0, 0.01^2)": "normal(0.01)",
    },
    batch,
    num_examples=4,
)
print(cmp)

# %%
# What to read in the tables:
#
# * **Jacobian singular values**: between 0.4 and 0.6 under the standard init, between 0.75
#   and 0.95 under Glorot's (the paper reports 0.5 and 0.8).
# * **Back-propagated gradient** ``rms(dLoss/dO_k)``: under the standard init it shrinks on
#   the way down (layer 1 gets less than 0.3 of layer 5's); under Glorot's init it stays
#   flat (the ratio is between 0.8 and 1.25).
# * **N(0, 1)**: most tanh units are saturated (``|tanh| > 0.99``) -- the verdicts say
#   "saturated".
# * **N(0, 0.01^2)**: every layer multiplies the activations by about
#   ``0.01 * sqrt(width)``, so they shrink towards zero layer by layer.
for label, report in cmp.reports.items():
    first, fifth = report.layers[0], report.layers[4]
    print(
        f"{label:>14}: gradient layer1/layer5 = "
        f"{first.activation_grad_rms / fifth.activation_grad_rms:.3g}, "
        f"verdicts {[r.verdict for r in report.layers]}"
    )
mean_sv = {k: float(np.mean(list(v.values()))) for k, v in cmp.singular_values.items()}
print({k: round(v, 3) for k, v in mean_sv.items()})


def layers_of(label, field):
    return np.array([getattr(r, field) for r in cmp.reports[label].layers[:5]])


# Gain about 0.5 and fading gradients under the standard init, larger and flat under
# Glorot's: the ranges the text above states, printed with the values they check.
grads = {label: layers_of(label, "activation_grad_rms") for label in cmp.reports}
grad_ratio = {label: g[0] / g[4] for label, g in grads.items()}  # layer 1 / layer 5
SV_RANGE = {"standard": (0.4, 0.6), "glorot": (0.75, 0.95)}
GRAD_RANGE = {"standard": (0.0, 0.3), "glorot": (0.8, 1.25)}
for label in ("standard", "glorot"):
    (lo, hi), (grad_lo, grad_hi) = SV_RANGE[label], GRAD_RANGE[label]
    print(
        f"{label:>8}: mean singular value {mean_sv[label]:.3f} (checked: {lo} to {hi}), "
        f"gradient layer 1 / layer 5 {grad_ratio[label]:.3f} (checked: {grad_lo} to {grad_hi})"
    )
    assert lo < mean_sv[label] < hi, mean_sv
    assert grad_lo < grad_ratio[label] < grad_hi, grad_ratio
# N(0, 1): most units of layers 3-5 saturated. N(0, 0.01^2): each layer scales the
# activations by about 0.01 sqrt(width), and the first layers' gradients vanish.
saturated = layers_of("N(0, 1)", "saturated_fraction")
assert np.all(saturated[2:] > 0.5), saturated
tiny_std = layers_of("N(0, 0.01^2)", "activation_std")
gain = tiny_std[1:] / tiny_std[:-1]  # how much each layer scales the activations
assert np.all(np.abs(gain / (0.01 * np.sqrt(WIDTH)) - 1) < 0.3), gain
assert [r.verdict for r in cmp.reports["N(0, 0.01^2)"].layers[:2]] == ["vanishing"] * 2, grads

# %%
# The picture
# -----------
cmp.plot(title=f"5-layer tanh MLP (width {WIDTH}) on digits")
plt.show()

# %%
# Activation histograms under the standard init and N(0, 1): bell-shaped and narrowing
# versus piled up at -1 and +1.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for ax, label in zip(axes, ("standard", "N(0, 1)"), strict=True):
    for r in cmp.reports[label].layers[:5]:
        centers = (r.edges[:-1] + r.edges[1:]) / 2
        ax.plot(centers, r.counts / r.counts.sum(), label=r.name)
    ax.set_title(f"tanh activations, {label} init")
    ax.set_xlabel("activation value")
    ax.set_ylabel("fraction of entries")
    ax.legend(fontsize=9)
plt.show()

# %%
# Takeaway
# --------
# An initialiser sets the gain of every layer. With ``Var(W) = 1 / (3 n)`` (the
# "standard" init, also PyTorch's default) the gain is about one half and gradients fade
# towards the input; Glorot's ``Var(W) = 2 / (n_in + n_out)`` keeps it near 1. Too large a variance
# saturates tanh units, too small a variance makes the signal die out.
