"""
Why doesn't my network train? Diagnose it in one call
=====================================================

:func:`jdl.analysis.diagnose` runs the checks of the other tutorials of this section in
one call -- the labels against the outputs, the loss at initialisation against ``ln C``,
gradient flow and activations at initialisation, the overfit-a-tiny-batch check and the
learning-rate range test with *your* optimiser -- and returns a report whose findings,
most severe first, each carry their evidence, a verdict and a fix. Here it names the
cause of three classic failures on Iris (the talk's Dense-Dense-softmax MLP), then passes
the fixed model.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

import jdl

warnings.filterwarnings("ignore", message=".*lr_find.*")
iris = jdl.data.as_arrays(jdl.data.load("iris", "train"))
raw = {"x": iris["x"].astype(np.float32), "y": iris["y"]}
std = {"x": (raw["x"] - raw["x"].mean(0)) / raw["x"].std(0), "y": raw["y"]}


def mlp(**kwargs):
    """16 ReLU units, 3 logits."""
    return jdl.nn.MLP(**{"widths": (16,), "num_outputs": 3, **kwargs})


# %%
# A learning rate of 2 with plain SGD
# -----------------------------------
# On the raw features, SGD at lr 2 kills every ReLU within a few steps and the loss
# freezes near ``ln 3``. The diagnosis says so, and takes the lower learning rate it
# suggests from the range test.
too_high = jdl.analysis.diagnose(mlp(), raw, optimizer=("sgd", 2.0), overfit_steps=100)
print(too_high)
assert too_high.top.check == "dead_after_training", too_high

# %%
# Labels that do not fit the outputs
# ----------------------------------
# Ten classes for a 3-output model: reported before anything trains (cross-entropy would
# silently turn labels 3..9 into all-zero targets), and the other checks are skipped.
labels = {"x": std["x"], "y": np.arange(len(std["x"])) % 10}
mismatch = jdl.analysis.diagnose(mlp(), labels)
print(mismatch)
assert mismatch.top.check == "labels", mismatch

# %%
# A softmax output fed to a logits loss
# -------------------------------------
# ``cross_entropy`` applies its own softmax: a model that already ends in one squashes
# its "logits" into ``[0, 1]`` and can never become confident.
softmax = jdl.analysis.diagnose(
    mlp(output_activation="softmax"), std, optimizer=("adam", 1e-2), overfit_steps=100
)
print(softmax)
assert softmax.top.check == "output_loss", softmax

# %%
# The fixed model
# ---------------
# Standardised inputs, logits out, Adam at 1e-2: no finding of severity warning or error.
fixed = jdl.analysis.diagnose(mlp(), std, optimizer=("adam", 1e-2))
print(fixed)
assert fixed.healthy, fixed

# %%
# The figure shows what the findings rest on: the gradient ratio of each layer at
# initialisation, the dead units before and after the overfit run, its loss curve and the
# range test with the given learning rate (black). Here, the lr-2 model:
too_high.plot(title="SGD at lr 2 on raw Iris features")
plt.show()

# %%
# The report is also data: ``to_json()`` for logs and CI (``python -m jdl diagnose
# --dataset iris --optimizer sgd --lr 2 --json report.json`` does it from the shell, and
# exits with status 1 when a finding is an error).
print(too_high.to_json(indent=1)[:400], "...")

# %%
# Takeaway
# --------
# When a network does not train, run ``diagnose`` before tuning anything: the label
# mismatch, the softmax before a logits loss and the learning rate that kills the ReLUs
# are each named with their evidence and a concrete fix (the checks after each report
# fail otherwise), and the fixed model passes with no warning. Deep nets get two more
# checks -- vanishing gradients and depth without skip connections -- that the
# tutorials on vanishing gradients and on skip connections in this section explain.
