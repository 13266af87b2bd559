"""Signal propagation (Brock et al. 2021) on residual stacks with and without BatchNorm."""

from __future__ import annotations

import jax
import numpy as np

from jdl import analysis
from jdl.nn import MLP, CifarResNet


def _sp(model, width=64, n=512):
    x = jax.random.normal(jax.random.key(1), (n, width))
    v = model.init(jax.random.key(0), x[:1], train=False)
    return analysis.signal_propagation(model, v, x)


def test_bn_relu_residual_stack_grows_linearly_and_unnormalised_explodes():
    # 16 residual blocks (17 hidden layers: the first one projects the input, no skip).
    bn = _sp(MLP(widths=(64,) * 17, num_outputs=10, residual=True, batch_norm=True))
    assert len(bn.names) == 17
    res = bn.residual_variance[1:]
    # Residual-branch variance near its constant: Var(relu(N(0,1))) = 1/2 - 1/(2 pi) = 0.34.
    assert np.all(np.abs(res - 0.341) < 0.1), res
    # Total variance grows linearly (not exponentially): a straight line fits it with
    # R^2 > 0.95 (measured 0.97); doubling the depth multiplies it by ~3, not by 100s.
    depth, var = bn.depth, bn.variance
    slope, icpt = np.polyfit(depth, var, 1)
    r2 = 1 - np.sum((var - (slope * depth + icpt)) ** 2) / np.sum((var - var.mean()) ** 2)
    assert slope > 0 and r2 > 0.95, (slope, r2)
    assert var[-1] < 4 * var[7]  # measured 2.9; the unnormalised stack: > 100

    plain = _sp(MLP(widths=(64,) * 17, num_outputs=10, residual=True, kernel_init="he"))
    assert plain.variance[-1] > 1e3 * plain.variance[1]
    assert plain.variance[-1] > 100 * bn.variance[-1]


def test_cifar_resnet_blocks_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    model = CifarResNet(depth=8, num_outputs=10)
    x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3))
    v = model.init(jax.random.key(0), x[:1], train=False)
    sp = analysis.signal_propagation(model, v, x)
    assert sp.names == ["layer1_0", "layer2_0", "layer3_0"]
    assert np.isfinite(sp.residual_variance[0]) and np.isnan(sp.residual_variance[1])
    fig = sp.plot(label="CifarResNet-8")
    axes = fig.axes
    assert len(axes) == 3 and axes[1].get_yscale() == "log"
    assert sp.plot(axes=axes, label="again") is fig  # overlaid on the same figure
    assert "variance" in str(sp)
