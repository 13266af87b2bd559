"""The report figures are legible where the docs show them.

The documentation shows a figure at most ~730 px wide (the content width at a 1280 px
window): a figure titled with ``title=`` (or a ``fig.suptitle`` added afterwards) must not
put its title over the panel titles, every text must be at least ~9 px tall at that width,
and nothing may be cut off at the figure's edges.
"""

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest
from matplotlib.text import Text

import jdl
from jdl import analysis
from jdl.nn import MLP

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: Width (px) at which the docs show a figure, and the smallest text height (px) allowed.
SHOWN_WIDTH_PX = 730
MIN_TEXT_PX = 9.0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def batch():
    x = jax.random.normal(jax.random.key(1), (64, 6))
    return {"x": x, "y": (x[:, 0] > 0).astype(jnp.int32)}


@pytest.fixture(scope="module")
def deep_sigmoid(batch):
    """30 sigmoid layers, standard init: the first layers' gradient norms underflow to 0."""
    model = MLP(widths=(16,) * 30, num_outputs=3, activation="sigmoid", kernel_init="standard")
    return model, model.init(jax.random.key(0), batch["x"][:1], train=False)


@pytest.fixture(scope="module")
def reports(batch, deep_sigmoid):
    model, variables = deep_sigmoid
    small = MLP(widths=(8, 8), num_outputs=2, activation="tanh")
    residual = MLP(widths=(8,) * 4, num_outputs=2, residual=True)
    res_vars = residual.init(jax.random.key(0), batch["x"][:1], train=False)
    data = (batch["x"], batch["y"])
    return {
        "gradient_flow": analysis.gradient_flow(model, variables, batch, "cross_entropy"),
        "activation_stats": analysis.activation_stats(model, variables, batch),
        "signal_propagation": analysis.signal_propagation(residual, res_vars, batch["x"]),
        "lr_find": analysis.lr_find(small, batch, "cross_entropy", optimizer="sgd", steps=40),
        "compare_inits": analysis.compare_inits(small, ["glorot", "he"], batch),
        "history": jdl.fit(
            small, data, batch_size=32, epochs=2, loss="cross_entropy",
            optimizer=optax.sgd(0.1), validation=data, verbose=0,
        ),
        "sweep": jdl.train.sweep(
            small, data, batch_size=32, epochs=2, loss="cross_entropy", optimizer="sgd",
            learning_rates=[0.1, 0.2], verbose=0,
        ),
    }  # fmt: skip


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _assert_title_clear_of_panels(fig):
    renderer = _renderer(fig)
    suptitle = fig.get_suptitle()
    assert suptitle, "the figure has no suptitle"
    box = fig._suptitle.get_window_extent(renderer)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), box
    for ax in fig.axes:
        for text in (ax.title, ax._left_title, ax._right_title):
            if text.get_text():
                other = text.get_window_extent(renderer)
                assert not _overlap(box, other), (suptitle, text.get_text(), box, other)
        assert not _overlap(box, ax.get_window_extent(renderer)), (suptitle, "axes")


@pytest.mark.parametrize("name", ["gradient_flow", "signal_propagation", "compare_inits"])
def test_title_is_laid_out_above_the_panel_titles(reports, name):
    _assert_title_clear_of_panels(
        reports[name].plot(title="100-layer sigmoid MLP, pre-activation residual")
    )


@pytest.mark.parametrize("name", ["gradient_flow", "signal_propagation", "compare_inits"])
def test_a_suptitle_added_after_plot_fits_too(reports, name):
    fig = reports[name].plot()
    fig.suptitle("100-layer sigmoid MLP, pre-activation residual")
    _assert_title_clear_of_panels(fig)


def test_signal_propagation_title_into_given_axes(reports):
    fig = reports["signal_propagation"].plot(label="first", title="Two networks")
    reports["signal_propagation"].plot(axes=fig.axes, label="second")
    _assert_title_clear_of_panels(fig)
    assert len(fig.axes) == 3
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["first", "second"]
    renderer = _renderer(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not _overlap(legend, ax.get_tightbbox(renderer)), "the legend covers a panel"


@pytest.mark.parametrize(
    "name",
    [
        "gradient_flow",
        "activation_stats",
        "signal_propagation",
        "lr_find",
        "compare_inits",
        "history",
        "sweep",
    ],
)
def test_text_is_legible_at_the_docs_width_and_not_cut_off(reports, name):
    fig = reports[name].plot()
    renderer = _renderer(fig)
    width_px = fig.get_figwidth() * fig.dpi
    scale = min(1.0, SHOWN_WIDTH_PX / width_px)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert texts, name
    for text in texts:
        shown = text.get_fontsize() / 72 * fig.dpi * scale
        assert shown >= MIN_TEXT_PX, (name, text.get_text(), text.get_fontsize(), shown)
    inside = fig.bbox.padded(1)
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1), (name, box)


def test_activation_histograms_leave_out_the_logits_and_name_the_activation(reports):
    stats = reports["activation_stats"]
    assert stats.output_layers == ("head",)
    ax = stats.plot(max_layers=100).axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert "head" not in rows and rows[0] == "Dense_0" and len(rows) == 30, rows
    assert "sigmoid" in ax.get_title().lower() and "hidden" in ax.get_title().lower()
    # Each row is one layer's histogram scaled to its peak: rows do not overlap.
    tops = [float(np.max(p.get_path().vertices[:, 1])) for p in ax.patches]
    bottoms = [float(np.min(p.get_path().vertices[:, 1])) for p in ax.patches]
    assert max(t - b for t, b in zip(tops, bottoms, strict=True)) <= 0.9


def test_activation_histograms_merge_a_layer_and_its_batchnorm(batch):
    model = MLP(widths=(8, 8), num_outputs=2, activation="tanh", batch_norm=True)
    variables = model.init(jax.random.key(0), batch["x"][:1], train=False)
    stats = analysis.activation_stats(model, variables, batch)
    ax = stats.plot().axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["Dense_0 + BatchNorm_0", "Dense_1 + BatchNorm_1"], rows


def test_gradient_flow_marks_zero_norms_on_a_labelled_floor(reports):
    report = reports["gradient_flow"]
    zero = [r.name for r in report.layers if r.grad_norm == 0]
    assert zero, "the fixture should have layers whose gradient underflows to 0"
    ax = report.plot().axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("exactly 0" in label for label in labels), labels
    floor = min(r.grad_norm for r in report.layers if r.grad_norm > 0) / 10
    assert any(np.isclose(line.get_ydata()[0], floor) for line in ax.get_lines()), floor
    assert ax.get_ylim()[0] < floor


def test_lr_find_plot_shows_the_useful_range_on_a_log_axis(reports):
    res = reports["lr_find"]
    ax = res.plot().axes[0]
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    before = np.isfinite(res.trend) & (res.lrs <= res.lr_min)
    assert lo <= np.min(res.losses) and hi >= np.max(res.trend[before])
    assert res.plot(log_loss=False).axes[0].get_yscale() == "linear"
