"""
Watching gradient flow while it trains
======================================

A learning-rate warm-up that climbs too high does not fail at once: the first hundred steps
go well, then the loss turns and creeps back up to chance. The final numbers say *that* it
went wrong, not *when* or *where*. :class:`jdl.analysis.TrainingMonitor` records, every few
steps of ``fit``, the per-layer numbers of :func:`jdl.analysis.gradient_flow` -- gradient
norm, the optimiser's update relative to the weights, activation spread, dead and saturated
units -- on one fixed probe batch, and draws them as heat maps of layers × steps. Here it
shows the moment the second hidden layer of an MNIST-1D MLP dies, and the learning rate at
that moment.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl
from jdl.analysis import TrainingMonitor

train = jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))
x, y = np.asarray(train["x"]), np.asarray(train["y"])
probe = (x[:256], y[:256])  # the same 256 examples at every record
model = jdl.nn.get_model("mnist1d_mlp")  # 40-100-100-10, ReLU


def warm_up_to(peak):
    """SGD with momentum, its learning rate rising linearly to ``peak`` over 400 steps."""
    return optax.linear_schedule(0.01, peak, transition_steps=400)


def train_with_monitor(peak):
    monitor = TrainingMonitor(probe, "cross_entropy", every=25)
    history = jdl.fit(
        model, (x, y), batch_size=100, steps=1000, loss="cross_entropy", verbose=0,
        optimizer=optax.sgd(warm_up_to(peak), momentum=0.9), log_every=25,
        callbacks=[monitor],
    )  # fmt: skip
    return monitor, history


# %%
# A warm-up that stays in range
# -----------------------------
# Warming up to 0.1: the loss falls epoch after epoch, and the monitor raises no alarm about
# dead or saturated units.
healthy, healthy_history = train_with_monitor(0.1)
print("losses every 5 epochs:", np.round(healthy_history.metrics["loss"][::5], 3))
healthy_alerts = [a for a in healthy.alerts() if "dead" in a[2] or "non-finite" in a[2]]
print("alerts:", healthy_alerts or "none")
assert not healthy_alerts

# %%
# A warm-up that goes too far
# ---------------------------
# The same run, warming up to 1.0. The alerts name the layer and the first recorded step
# where at least half its units output zero for every probe example; the schedule gives
# the learning rate of that step.
broken, broken_history = train_with_monitor(1.0)
print("losses every 5 epochs:", np.round(broken_history.metrics["loss"][::5], 3))
dead = [a for a in broken.alerts() if "dead" in a[2]]
for step, layer, what in dead:
    print(f"step {step}: {layer}: {what}; learning rate {float(warm_up_to(1.0)(step)):.2f}")
assert dead, broken.alerts()
first_dead_step, dead_layer, _ = dead[0]
assert first_dead_step > 0  # the run started healthy
assert broken_history.metrics["loss"][-1] > min(broken_history.metrics["loss"])

# %%
# The heat maps make the story visible at a glance: each row is a layer, each column a
# record. The dead fraction of the dead layer turns from dark to bright while the warm-up
# is still climbing, and its gradient norm collapses at the same columns: a dead ReLU layer
# passes no gradient, so the layers below it stop learning too.
fig = broken.plot()
fig.suptitle(f"MNIST-1D MLP, SGD warm-up to 1.0: {dead_layer} dies at step {first_dead_step}")
plt.show()

# %%
# For comparison, the healthy run: no column where a layer turns dead.
fig = healthy.plot()
fig.suptitle("MNIST-1D MLP, SGD warm-up to 0.1")
plt.show()

# %%
# Takeaway
# --------
# A learning rate that is too high after warm-up kills ReLU units from the moment it
# crosses a threshold; the final loss only says the run failed. Recording gradient flow
# during training (one extra compiled pass every ``every`` steps, kept on the device until
# the epoch ends) names the layer and the step, hence the learning rate to stay under.
# Lower the peak, stretch the warm-up, or use a leaky activation that cannot die.

# sphinx_gallery_thumbnail_number = 1
