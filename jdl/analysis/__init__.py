"""Understanding training: ``diagnose`` (every check below in one call), gradient flow,
activation statistics, signal propagation, the learning-rate range test, the
overfit-a-tiny-batch check and initialisation studies.

Every analysis takes a model (any ``flax.linen`` module: every jdl model, or your own), its
variables and a batch, runs one compiled pass, and returns a small report object that
prints as a table and has a ``.plot()``. Layers are named by their parameter paths
(``"Dense_3"``, ``"layer2_1/conv1"``) and always listed in forward (input-to-output) order.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import jdl
    >>> model = jdl.nn.MLP(widths=(32,) * 20, num_outputs=3, activation="sigmoid",
    ...                    kernel_init="standard")
    >>> variables = model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
    >>> batch = {"x": jax.random.normal(jax.random.key(1), (16, 4)), "y": jnp.arange(16) % 3}
    >>> report = jdl.analysis.gradient_flow(model, variables, batch, "cross_entropy")
    >>> report.layers[0].verdict, report.layers[-1].verdict
    ('vanishing', 'healthy')
"""

from jdl.analysis.activations import ActivationStats, LayerActivations, activation_stats
from jdl.analysis.diagnosis import STAGES, Diagnosis, Finding, diagnose
from jdl.analysis.flow import (
    DEAD_FRACTION,
    EXPLODING_RATIO,
    SATURATED_FRACTION,
    VANISHING_RATIO,
    VERDICTS,
    GradientFlow,
    LayerReport,
    gradient_flow,
)
from jdl.analysis.gradients import LayerGradient, gradient_norms, layer_gradients
from jdl.analysis.inits import InitComparison, compare_inits, jacobian_singular_values
from jdl.analysis.lr_range import LRFinder, lr_find
from jdl.analysis.monitor import MONITOR_STATS, UPDATE_RATIO_LIMIT, TrainingMonitor
from jdl.analysis.overfit import OverfitResult, overfit_check
from jdl.analysis.scanning import ScanRun, scan_fit
from jdl.analysis.signal import SignalPropagation, channel_stats, signal_propagation

__all__ = [
    "DEAD_FRACTION",
    "EXPLODING_RATIO",
    "MONITOR_STATS",
    "SATURATED_FRACTION",
    "STAGES",
    "UPDATE_RATIO_LIMIT",
    "VANISHING_RATIO",
    "VERDICTS",
    "ActivationStats",
    "Diagnosis",
    "Finding",
    "GradientFlow",
    "InitComparison",
    "LRFinder",
    "LayerActivations",
    "LayerGradient",
    "LayerReport",
    "OverfitResult",
    "ScanRun",
    "SignalPropagation",
    "TrainingMonitor",
    "activation_stats",
    "channel_stats",
    "compare_inits",
    "diagnose",
    "gradient_flow",
    "gradient_norms",
    "jacobian_singular_values",
    "layer_gradients",
    "lr_find",
    "overfit_check",
    "scan_fit",
    "signal_propagation",
]
