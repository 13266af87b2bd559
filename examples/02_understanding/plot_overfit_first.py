"""
Overfit a tiny batch first
==========================

Before training on a whole dataset, check that the model can memorise three examples.
A correct model always can; if it can't, something is wired wrong.
:func:`jdl.analysis.overfit_check` trains on the few examples, reports pass/fail, compares
the loss at initialisation with ``ln C`` and, on failure, hints at the likely cause.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import jdl

digits = jdl.data.as_arrays(jdl.data.load("digits", "train"))
few = {
    "x": digits["x"][:3].reshape(3, -1).astype(np.float32) / 16.0,
    "y": digits["y"][:3],
}

# %%
# A correct model
# ---------------
good = jdl.analysis.overfit_check(jdl.nn.MLP(widths=(32,), num_outputs=10), few)
print(good)
assert good.passed and good.initial_loss_ok and good.accuracy == 1.0, good

# %%
# A sigmoid output fed to cross-entropy
# -------------------------------------
# ``cross_entropy`` expects logits. Squashed into (0, 1) they can never make the softmax
# confident, so the loss cannot go below :math:`\ln(1 + 9/e) \approx 1.46` (the correct
# logit at 1, the nine others at 0).
bad = jdl.analysis.overfit_check(
    jdl.nn.MLP(widths=(32,), num_outputs=10, output_activation="sigmoid"), few
)
print(bad)
assert not bad.passed and bad.final_loss > 1.5 and bad.hints, bad

# %%
# A 10-class problem as regression: sigmoid outputs and MSE on one-hot targets
# ----------------------------------------------------------------------------
one_hot = {"x": few["x"], "y": np.eye(10, dtype=np.float32)[few["y"]]}
mse = jdl.analysis.overfit_check(
    jdl.nn.MLP(widths=(32,), num_outputs=10, output_activation="sigmoid", kernel_init="he"),
    one_hot,
    "mse",
    steps=100,
    rel_tolerance=1e-3,
)
print(mse)
assert not mse.passed and mse.hints, mse

# %%
# An over-confident head
# ----------------------
# Weights drawn from N(0, 3^2) make the initial logits huge: the loss starts far above
# ``ln 10 = 2.30``.
loud = jdl.analysis.overfit_check(
    jdl.nn.MLP(widths=(32,), num_outputs=10, kernel_init=3.0), few, steps=50
)
print(loud)
assert loud.initial_loss > 3 * np.log(10) and loud.initial_loss_ok is False and loud.hints, loud

fig, ax = plt.subplots(figsize=(6, 4))
for label, res in (("correct", good), ("sigmoid + cross-entropy", bad), ("N(0, 9) init", loud)):
    ax.semilogy(res.losses, label=label)
ax.axhline(np.log(10), color="0.5", ls=":", label="ln 10")
ax.set_xlabel("step")
ax.set_ylabel("loss on 3 examples (log)")
ax.set_title("Overfit check")
ax.legend()
plt.show()

# %%
# Takeaway
# --------
# Memorising three examples takes seconds and catches wiring mistakes before they cost an
# hour of training: above, the correct model passes while the wrong output layer for the
# loss fails (twice) and the head that starts far from ``ln C`` is flagged (the checks
# after each result fail otherwise). Its hints also name a bad learning rate and dead
# units, which this script does not show.
