"""
Where did the NaN come from?
============================

A loss that turns into ``nan`` says that something overflowed, not what. jdl narrows it
down in three steps: ``fit`` warns at the first epoch whose loss is not finite, naming the
first non-finite parameter; :class:`~jdl.train.callbacks.TerminateOnNaN` stops the run at
that step; and ``fit(debug=True)`` counts NaN/inf on the device, inside the compiled step,
for every input field, layer output, gradient and updated variable, then names the first
step, layer and parameter that went non-finite. Bad *data* never gets that far: NaN inputs
and labels the model has no output for are refused before anything compiles.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

import jdl

digits = jdl.data.as_arrays(jdl.data.load("digits", "train"))
pixels = digits["x"].reshape(len(digits["x"]), -1).astype(np.float32)  # 0..16, unscaled
labels = digits["y"]
model = jdl.nn.MLP(widths=(64, 64), num_outputs=10)
settings = dict(batch_size=64, loss="cross_entropy", epochs=3, verbose=0)

# %%
# A learning rate far too large
# -----------------------------
# Unscaled pixels and plain SGD at a learning rate of a million: the first steps throw the
# weights so far that the logits overflow. ``fit`` keeps training (a NaN may be what you
# are studying) but says so once, naming the first parameter that is no longer finite.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    diverged = jdl.fit(model, (pixels, labels), optimizer=("sgd", 1e6), **settings)
print(diverged.metrics["loss"])
print(caught[0].message)
assert np.isnan(diverged.metrics["loss"]).all() and "first non-finite parameter" in str(
    caught[0].message
)

# %%
# Stop at the step, and say where
# -------------------------------
# ``TerminateOnNaN`` checks every step's loss when the metrics are fetched (every
# ``log_every`` steps, never a host sync per step) and stops the run there.
stopped = jdl.fit(
    model,
    (pixels, labels),
    optimizer=("sgd", 1e6),
    callbacks=[jdl.train.callbacks.TerminateOnNaN()],
    log_every=1,
    **settings,
)
print(stopped.stop_reason)
assert stopped.stop_reason.startswith("loss became") and "params/" in stopped.stop_reason

# %%
# Which layer overflowed first: ``debug=True``
# --------------------------------------------
# The debug step also counts non-finite values in each layer's output, in forward order,
# and in each gradient and updated variable. The first step with any raises
# :class:`jdl.train.NonFiniteError`: here the inputs and the hidden layers were still
# finite at step 3, and the output layer's logits overflowed -- the learning rate, not the
# data, is to blame.
try:
    jdl.fit(model, (pixels, labels), optimizer=("sgd", 1e6), debug=True, **settings)
except jdl.train.NonFiniteError as err:
    print(err)
    found = err
assert found.layer == "head" and found.inputs == {} and found.gradient.startswith("params/")

# %%
# The fix, checked the same way
# -----------------------------
# Scaled pixels and a learning rate of Adam's usual size: the debug run finishes, every
# step finite, and the loss falls.
fixed = jdl.fit(model, (pixels / 16.0, labels), optimizer=("adam", 1e-2), debug=True, **settings)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(fixed.epochs, fixed.metrics["loss"], marker="o")
ax.set(xlabel="epoch", ylabel="training loss", title="Adam 1e-2, scaled pixels: finite")
fig.tight_layout()
print(fixed.metrics["loss"])
losses = fixed.metrics["loss"]
assert np.isfinite(losses).all() and losses[-1] < losses[0] / 3, losses

# %%
# Bad data is refused before training
# -----------------------------------
# A NaN pixel, or a label the model has no output for, would train silently into NaN or
# into nonsense (cross-entropy reads label 10 of a 10-output model as an all-zero target).
# ``fit`` checks the whole in-memory dataset up front, in one NumPy pass, and names the
# example and the fix.
holed = pixels.copy()
holed[41, 7] = np.nan
wrong = labels.copy()
wrong[5] = 10
for data in ((holed, labels), (pixels / 16.0, wrong)):
    try:
        jdl.fit(model, data, optimizer=("sgd", 0.1), **settings)
    except ValueError as err:
        print(f"{err}\n")
        message = str(err)
        assert "index 41" in message or "index 5" in message, message
plt.show()

# %%
# Takeaway
# --------
# A NaN loss is a symptom. ``fit`` names the first non-finite parameter on its own,
# ``TerminateOnNaN`` stops at the step, and ``debug=True`` tells the data from the model:
# above, the inputs were finite and the output layer overflowed first, at step 3, under a
# learning rate a million times too large (the checks after each run fail otherwise).
# Bad data -- a NaN pixel, a label with no output -- is refused before training, naming the
# example.
