"""Chapter 4's widget callbacks and figures (s4lite.viz.hippo), and chapter 3's helpers (s4lite.viz.views)."""

import matplotlib

matplotlib.use("Agg")

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from s4lite.convolution import causal_conv  # noqa: E402
from s4lite.viz import hippo as vh  # noqa: E402
from s4lite.viz import views  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ chapter 4: s4lite.viz.hippo


def test_plot_reconstruction_labels():
    fig = vh.plot_reconstruction(16, 0.5, "noisy")
    ax, ax_c = fig.axes
    assert ax.get_xlabel() == "time $s$" and ax.get_ylabel() == "$u(s)$"
    assert "t = 0.50" in ax.get_title() and "'noisy'" in ax.get_title()
    assert "N = 16" in ax.get_legend().get_texts()[1].get_text()
    assert ax_c.get_xlabel() == "coefficient index $n$"
    # the decoded curve covers the history [0, t] only
    line = ax.get_lines()[1]
    assert line.get_xdata()[-1] == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [0, -3, vh.MAX_N + 1, 2.5, "8"])
def test_plot_reconstruction_bad_N(bad):
    with pytest.raises(ValueError, match="N"):
        vh.plot_reconstruction(bad, 0.5)


@pytest.mark.parametrize("bad", [0.0, 1.5, "x"])
def test_plot_reconstruction_bad_t_frac(bad):
    with pytest.raises(ValueError, match="t_frac"):
        vh.plot_reconstruction(8, bad)


def test_plot_reconstruction_bad_signal():
    with pytest.raises(ValueError, match="signal"):
        vh.plot_reconstruction(8, 0.5, "sawtooth")


def test_reconstruction_error_falls_with_N():
    e8, e64 = vh.reconstruction_error(8, 1.0), vh.reconstruction_error(64, 1.0)
    assert e64 < 0.1 * e8
    # the reported error is the error of what the figure shows
    fig = vh.plot_reconstruction(8, 1.0)
    assert f"{e8:.3f}" in fig.axes[0].get_title()


def test_make_signal():
    t, u = vh.make_signal("square", L=10)
    assert t[0] == pytest.approx(0.1) and t[-1] == pytest.approx(1.0)
    assert set(np.unique(u)) <= {-1.0, 1.0}
    _, clean = vh.make_signal("multi-sine", L=10)
    _, noisy = vh.make_signal("noisy", L=10)
    assert np.std(noisy - clean) > 0.05


def test_plot_reconstruction_grid_titles():
    fig = vh.plot_reconstruction_grid([4, 8], 1.0)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("N = 4") and titles[1].startswith("N = 8")
    with pytest.raises(ValueError, match="Ns"):
        vh.plot_reconstruction_grid([])


def test_animate_history():
    anim = vh.animate_history(8, frames=2)
    assert isinstance(anim, FuncAnimation)
    html = anim.to_jshtml()
    assert html.count("data:image/png;base64") == 2  # one embedded frame per time
    with pytest.raises(ValueError, match="frames"):
        vh.animate_history(8, frames=41)


@pytest.mark.parametrize("measure", ["legs", "legt", "lagt"])
def test_plot_hippo_matrix(measure):
    fig = vh.plot_hippo_matrix(8, measure)
    ax, cbar = fig.axes
    assert ax.get_xlabel() == "column $k$" and ax.get_ylabel() == "row $n$"
    assert "N = 8" in ax.get_title() and cbar.get_ylabel() == "$A_{nk}$"
    lo, hi = ax.get_images()[0].get_clim()
    assert lo == -hi  # diverging colormap centred on 0
    with pytest.raises(ValueError, match="measure"):
        vh.plot_hippo_matrix(8, "fourier")


def test_random_stable_matrix_eigenvalue_range():
    A = vh.random_stable_matrix(12, -12.0, -1.0, seed=3)
    re = np.linalg.eigvals(A).real
    assert re.min() == pytest.approx(-12.0, abs=1e-9) and re.max() == pytest.approx(-1.0, abs=1e-9)
    with pytest.raises(ValueError, match="re_min"):
        vh.random_stable_matrix(12, -1.0, 2.0)


def test_memory_systems():
    systems = vh.memory_systems(6)
    assert list(systems) == ["LegS", "LegT", "LagT", "random"]
    A, B = systems["random"]
    assert np.linalg.norm(B) == pytest.approx(np.linalg.norm(systems["LegS"][1]))
    assert np.linalg.eigvals(A).real.max() == pytest.approx(-1.0, abs=1e-9)


def test_memory_plots_labels():
    times = np.arange(5) * 0.1
    fig = vh.plot_impulse_norms(times, {"a": np.array([2.0, 1.0, 0.5, 0.25, 0.1])})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "impulse" in ax.get_xlabel()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata()[:2], [1.0, 0.5])
    fig = vh.plot_memory_profiles(times, {"a": np.full(5, 0.2)}, N=1)
    assert "total 1.0" in fig.axes[0].get_legend().get_texts()[0].get_text()


# ------------------------------------------------------------------ chapter 3: s4lite.viz.views


def test_circular_conv_wraps_around():
    """Against the explicit modular sum; it differs from the causal convolution only by the wrap."""
    rng = np.random.default_rng(0)
    L = 16
    u, K = rng.standard_normal(L), rng.standard_normal(L)
    expected = np.array([sum(K[j] * u[(k - j) % L] for j in range(L)) for k in range(L)])
    y = np.asarray(views.circular_conv(u, K))
    assert np.max(np.abs(y - expected)) < 1e-12
    wrap = np.array([sum(K[j] * u[k - j + L] for j in range(k + 1, L)) for k in range(L)])
    assert np.max(np.abs(y - np.asarray(causal_conv(u, K)) - wrap)) < 1e-12
    with pytest.raises(ValueError, match="K"):
        views.circular_conv(u, K[:-1])


def test_time_fn():
    calls = []

    def f(x):
        calls.append(1)
        return jnp.sum(x)

    seconds = views.time_fn(f, jnp.ones(4), repeats=3)
    assert seconds > 0 and len(calls) == 4  # one warm-up + three timed
    with pytest.raises(ValueError, match="repeats"):
        views.time_fn(f, jnp.ones(4), repeats=0)
    with pytest.raises(ValueError, match="fn"):
        views.time_fn(None)


def test_measure_and_plot_costs():
    costs = views.measure_costs([16], N=4, repeats=1)
    assert list(costs["L"]) == [16]
    assert all(costs[k].shape == (1,) and np.all(costs[k] > 0) for k in ("scan", "conv", "kernel"))
    ax = views.plot_costs(costs, N=4).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "sequence length $L$" and "(N = 4)" in ax.get_title()
    with pytest.raises(ValueError, match="costs"):
        views.plot_costs({"L": costs["L"]})
    with pytest.raises(ValueError, match="lengths"):
        views.measure_costs([])
