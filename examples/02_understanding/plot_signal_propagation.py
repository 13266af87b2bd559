"""
Signal propagation (Brock, De & Smith 2021)
===========================================

A signal-propagation plot summarises the hidden activations at the output of every
residual block with three numbers: the average squared channel mean, the average channel
variance, and the variance of the residual branch. :func:`jdl.analysis.signal_propagation`
computes them for any model. For a 16-block BatchNorm-ReLU residual stack the
residual-branch variance stays near a constant and the total variance grows about linearly
with depth; without normalisation both explode.
"""

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import jdl

x = jax.random.normal(jax.random.key(1), (1024, 64))  # unit-Gaussian inputs, as in the paper


def signal(model):
    variables = model.init(jax.random.key(0), x[:1], train=False)
    return jdl.analysis.signal_propagation(model, variables, x)


# 17 hidden layers = a projection + 16 residual blocks h <- h + relu(BN(Dense(h))).
bn_stack = signal(
    jdl.nn.MLP(widths=(64,) * 17, num_outputs=10, residual=True, batch_norm=True, kernel_init="he")
)
raw_stack = signal(jdl.nn.MLP(widths=(64,) * 17, num_outputs=10, residual=True, kernel_init="he"))
print(bn_stack)

# %%
# The plot
# --------
fig = bn_stack.plot(label="BN-ReLU residual", title="Signal propagation through 16 residual blocks")
raw_stack.plot(axes=fig.axes, label="ReLU residual, no normalisation")
plt.show()

# %%
# With BatchNorm each branch outputs ``relu`` of a unit Gaussian: variance
# ``1/2 - 1/(2 pi) = 0.34``, whatever the depth, so the stream's variance grows by a
# bounded amount per block -- about linearly (the increments, printed below, creep up from
# about that value to about 1 here, because each branch is a little correlated with the
# stream it is added to).
# Without normalisation the branch scales with its input, and the variance more than
# doubles at every block.
print("BN residual variance by block:", bn_stack.residual_variance.round(2))
print("BN total variance, increase per block:", np.diff(bn_stack.variance).round(2))
print("unnormalised total variance:", raw_stack.variance[[1, 8, 16]])
raw_growth = (raw_stack.variance[16] / raw_stack.variance[1]) ** (1 / 15)
print(f"unnormalised: variance x {raw_growth:.2f} per block")
branch = bn_stack.residual_variance[1:]  # (there is no branch before the first block)
assert np.all(np.abs(branch - (1 / 2 - 1 / (2 * np.pi))) < 0.1), branch
step = np.diff(bn_stack.variance)
assert np.all((0.2 < step) & (step < 1.5)), step
assert raw_growth > 1.8 and raw_stack.variance[16] > 1e4 * bn_stack.variance[16], raw_growth

# %%
# A real ResNet
# -------------
# The same call works on :class:`jdl.nn.CifarResNet`: its blocks ``layer{s}_{i}`` are the
# measurement points (the residual variance is undefined where a block downsamples).
model = jdl.nn.CifarResNet(depth=20)
images = jax.random.normal(jax.random.key(2), (32, 32, 32, 3))
v = model.init(jax.random.key(0), images[:1], train=False)
sp = jdl.analysis.signal_propagation(model, v, images)
fig = sp.plot(label="CifarResNet-20")
plt.show()

# %%
# Takeaway
# --------
# Signal-propagation plots show at a glance whether a deep network keeps its activations
# at a sane scale. Normalised residual networks grow about linearly (harmless); unnormalised
# ones explode unless their branches are scaled down (Brock et al.'s NF-ResNets).
