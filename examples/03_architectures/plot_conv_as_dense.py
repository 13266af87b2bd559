"""
A convolution is a dense layer applied to image patches
=======================================================

This tutorial shows, numerically, that a convolutional layer is nothing more than one
small dense layer applied to every patch of the input: we cut the patches out of a batch
of digits by hand (and with ``jax.lax.conv_general_dilated_patches``), multiply them by the
conv kernel reshaped into a matrix, and get the output of Flax's ``nn.Conv`` and of the
first layer of a :class:`jdl.nn.CNN` to float precision. Written as one big dense layer on
the whole flattened image, the same convolution is a sparse, banded matrix whose few
distinct entries repeat — locality and weight sharing made visible — with 400 times fewer
free parameters than a dense layer of the same shape.
"""

# %%
# A conv layer inside a jdl CNN
# -----------------------------
# We build a small 2-D :class:`jdl.nn.CNN` whose first layer, ``Conv_0``, has 4 filters of
# size 3x3 with ``"SAME"`` padding, and record that layer's output on 16 digits with
# Flax's ``capture_intermediates``. Images are channels-last: ``(batch, 8, 8, 1)``.
import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jdl

digits = jdl.data.as_arrays(jdl.data.load("digits", split="train"))
x = jnp.asarray(digits["x"][:16])  # (16, 8, 8, 1), values in [0, 1]

model = jdl.nn.CNN(features=(4, 8), kernel_size=3, padding="SAME", num_outputs=10)
variables = model.init(jax.random.key(0), x, train=False)
_, captured = model.apply(variables, x, train=False, capture_intermediates=True)
conv_out = captured["intermediates"]["Conv_0"]["__call__"][0]  # before the ReLU
kernel = variables["params"]["Conv_0"]["kernel"]  # (3, 3, in=1, out=4): HWIO
bias = variables["params"]["Conv_0"]["bias"]  # (4,)
print("input", x.shape, "-> Conv_0 output", conv_out.shape, "; kernel", kernel.shape)

# %%
# The same layer, by hand: patches times a matrix
# -----------------------------------------------
# For every output pixel ``(i, j)`` take the 3x3 neighbourhood of the zero-padded input
# (``"SAME"`` padding = one pixel of zeros on each side for a 3x3 window), flatten it into
# a vector of ``3 * 3 * C_in = 9`` numbers, and multiply by the kernel flattened into a
# ``9 x 4`` matrix. That is a dense layer with 9 inputs and 4 outputs, shared by all 64
# positions.
k = kernel.shape[0]
padded = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
n, height, width, c_in = x.shape
patches = np.stack(
    [
        padded[:, i : i + k, j : j + k, :].reshape(n, -1)  # (n, kh * kw * C_in)
        for i in range(height)
        for j in range(width)
    ],
    axis=1,
)  # (n, positions = 64, 9)
weight = np.asarray(kernel).reshape(k * k * c_in, -1)  # (kh * kw * C_in, C_out) = (9, 4)
dense_out = (patches @ weight + np.asarray(bias)).reshape(n, height, width, -1)
print("patch matrix:", patches.shape, " weight matrix:", weight.shape)
print(f"max |patches @ W + b - Conv_0(x)| = {np.max(np.abs(dense_out - conv_out)):.2e}")
np.testing.assert_allclose(dense_out, conv_out, atol=1e-5)

# %%
# ``jax.lax.conv_general_dilated_patches`` cuts the same patches in one call. It orders
# each patch *channel first* — ``(C_in, kh, kw)`` — so the HWIO kernel is transposed to
# ``(C_in, kh, kw, C_out)`` before flattening. We also compare with a plain ``flax.linen``
# ``nn.Conv`` given the same parameters.
lax_patches = jax.lax.conv_general_dilated_patches(
    x, (k, k), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
)  # (n, 8, 8, C_in * kh * kw)
lax_weight = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(-1, kernel.shape[-1])
lax_out = lax_patches @ lax_weight + bias
flax_out = nn.Conv(4, (3, 3), padding="SAME").apply({"params": {"kernel": kernel, "bias": bias}}, x)
print(f"max |lax patches @ W + b - Conv_0(x)| = {float(jnp.max(jnp.abs(lax_out - conv_out))):.2e}")
print(f"max |flax nn.Conv(x) - Conv_0(x)|     = {float(jnp.max(jnp.abs(flax_out - conv_out))):.2e}")
np.testing.assert_allclose(lax_out, conv_out, atol=1e-5)
np.testing.assert_allclose(flax_out, conv_out, atol=1e-5)

# %%
# Strides pick every s-th patch
# -----------------------------
# The MNIST-1D paper's CNN starts with a 1-D conv of 25 filters, kernel 5, stride 2 and
# padding 1. Its patches are windows of 5 samples taken every 2 positions: a stride is just
# a coarser grid of patches. Output length = (40 + 2 * 1 - 5) // 2 + 1 = 19.
signal = jnp.asarray(jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))["x"][:8])
cnn1d = jdl.nn.get_model("mnist1d_cnn")  # CNN(features=(25, 25, 25), kernel_size=(5, 3, 3), ...)
vars1d = cnn1d.init(jax.random.key(1), signal, train=False)
_, cap1d = cnn1d.apply(vars1d, signal, train=False, capture_intermediates=True)
conv1d_out = cap1d["intermediates"]["Conv_0"]["__call__"][0]  # (8, 19, 25)
k1, s1 = 5, 2
padded1d = np.pad(np.asarray(signal), ((0, 0), (1, 1)))
windows = np.stack(
    [padded1d[:, t : t + k1] for t in range(0, padded1d.shape[1] - k1 + 1, s1)], axis=1
)  # (8, 19, 5)
w1d = np.asarray(vars1d["params"]["Conv_0"]["kernel"]).reshape(k1, -1)  # (5, 1, 25) -> (5, 25)
out1d = windows @ w1d + np.asarray(vars1d["params"]["Conv_0"]["bias"])
print(
    "1-D conv output",
    conv1d_out.shape,
    f"; max difference {np.max(np.abs(out1d - conv1d_out)):.2e}",
)
np.testing.assert_allclose(out1d, conv1d_out, atol=1e-5)

# %%
# The convolution as one big dense layer
# --------------------------------------
# A conv layer is linear in its input, so it also *is* a dense layer on the whole flattened
# image: a ``64 x 256`` matrix (8x8x1 inputs to 8x8x4 outputs). We read that matrix off with
# ``jax.jacobian`` (the Jacobian of a linear map is its matrix). Almost all its entries are
# zero (*locality*: an output pixel sees only its 3x3 neighbourhood), and the non-zero ones
# take only 36 distinct values, the 9 kernel weights of each of the 4 filters (*weight
# sharing*). A free dense layer of that shape has 16,640 parameters; the conv has 40.


def conv_layer(image):  # one image (8, 8, 1) -> (8, 8, 4), pre-activation
    return nn.Conv(4, (3, 3), padding="SAME").apply(
        {"params": {"kernel": kernel, "bias": bias}}, image[None]
    )[0]


matrix = jax.jacobian(conv_layer)(x[0]).reshape(height * width * 4, height * width * c_in).T
matrix = np.asarray(matrix)  # (inputs 64, outputs 256): y_flat = x_flat @ matrix + b
nonzero = np.abs(matrix) > 0
dense_params = matrix.size + matrix.shape[1]
conv_params = jdl.nn.count_params({"kernel": kernel, "bias": bias})
print(f"equivalent dense matrix: {matrix.shape}, non-zero entries {nonzero.mean():.1%}")
distinct = len(np.unique(np.round(matrix[nonzero], 6)))
print(f"distinct non-zero values: {distinct}")
ratio = dense_params / conv_params
print(f"free parameters: dense {dense_params:,} vs conv {conv_params} ({ratio:.0f}x)")
# Locality: an output pixel sees at most 9 of the 64 inputs (fewer at the borders), so
# under 9 / 64 = 14 % of the entries are non-zero; weight sharing: 36 distinct values.
assert nonzero.mean() <= k * k / (height * width), nonzero.mean()
assert distinct == kernel.size == 36, (distinct, kernel.shape)
assert ratio > 400, (dense_params, conv_params)
flat_out = np.asarray(x[0]).reshape(-1) @ matrix
np.testing.assert_allclose(
    flat_out.reshape(height, width, 4) + np.asarray(bias), conv_out[0], atol=1e-5
)

# %%
# The figure shows a digit, the four feature maps computed both ways (top: ``Conv_0`` of
# the CNN, bottom: patches times the kernel matrix — identical), and the equivalent dense
# matrix for the first filter: a banded, Toeplitz-like pattern.
fig = plt.figure(figsize=(10, 5.2), layout="constrained")
grid = fig.add_gridspec(2, 6, width_ratios=[1, 1, 1, 1, 1, 2.4])
ax = fig.add_subplot(grid[:, 0])
ax.imshow(x[0, :, :, 0], cmap="gray_r")
ax.set_title(f"input digit (label {digits['y'][0]})", fontsize=9)
ax.set_xlabel("width")
ax.set_ylabel("height")
for f in range(4):
    for row, (maps, name) in enumerate([(conv_out, "Conv_0"), (dense_out, "patches @ W")]):
        ax = fig.add_subplot(grid[row, f + 1])
        ax.imshow(maps[0, :, :, f], cmap="RdBu_r")
        ax.set_title(f"{name}\nfilter {f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
ax = fig.add_subplot(grid[:, 5])
block = matrix[:, 0::4]  # the columns that produce filter 0's outputs: (64, 64)
lim = np.abs(block).max()
image = ax.imshow(block, cmap="RdBu_r", vmin=-lim, vmax=lim)
ax.set(
    title="conv as a dense matrix (filter 0)\nwhite = 0: 9 inputs per output",
    xlabel="output pixel (row-major)",
    ylabel="input pixel (row-major)",
)
ax.title.set_fontsize(10)
fig.colorbar(image, ax=ax, label="weight", shrink=0.8)
fig.suptitle("A 3x3 convolution = one 9-input dense layer applied to every patch")

# %%
# Takeaway
# --------
# A convolution multiplies every ``k x k x C_in`` patch of its input by the same
# ``(k * k * C_in) x C_out`` matrix and adds a bias: a small dense layer slid over the
# image (strides only choose which patches). Seen as a dense layer on the whole image, it is
# a very sparse matrix with a handful of shared values — which is why a conv layer has so
# few parameters, responds only to local structure, and responds to a pattern in the same
# way wherever it appears.
