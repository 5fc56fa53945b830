"""Chapter 2 helpers (s4lite.viz.discretization): signals, reference and discrete runs, the figures.

Oracles: scipy.signal.cont2discrete (the three discretizations) with a plain NumPy recurrence, and
scipy.signal.lsim (the exact output) for the error a figure reports; closed forms for the maps and
for the fitted slope. Every figure is closed.
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.signal  # noqa: E402

from s4lite.viz import discretization as viz  # noqa: E402

SCIPY_METHOD = {"euler": "euler", "bilinear": "bilinear", "zoh": "zoh"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def independent_error(step: float, method: str, signal: str, t_end: float = viz.T_END) -> float:
    """max_k |y_k − y((k+1)Δ)| from SciPy alone (start samples), for a smooth ``signal``."""
    A, B, C = viz.default_system()
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B[:, None], C[None, :], 0.0), step, method=SCIPY_METHOD[method])
    L = int(np.floor(t_end / step + 1e-9))
    u = viz.make_signal(signal, step * np.arange(L))
    x, y = np.zeros(2), np.empty(L)
    for k in range(L):
        x = Ad @ x + Bd[:, 0] * u[k]
        y[k] = C @ x
    grid = np.linspace(0, L * step, 400 * L + 1)  # lsim needs a uniform grid: 400 intervals per step, so it holds every output time
    _, y_ref, _ = scipy.signal.lsim((A, B[:, None], C[None, :], 0.0), viz.make_signal(signal, grid), grid)
    return float(np.max(np.abs(y - y_ref[400 * (np.arange(L) + 1)])))


def test_make_signal_values_and_shapes() -> None:
    t = np.array([0.0, 0.999, 1.0, 2.5, 4.0])
    np.testing.assert_array_equal(viz.make_signal("step", t), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(viz.make_signal("square", t), [1, 1, 1, -1, 1])
    np.testing.assert_allclose(viz.make_signal("sine", t), np.sin(t), rtol=0, atol=0)
    np.testing.assert_allclose(viz.make_signal("chirp", t), np.sin(0.15 * t**2), rtol=0, atol=0)
    for name in viz.SIGNALS:
        assert viz.make_signal(name, np.linspace(0, 1, 7)).shape == (7,)
        assert viz.make_signal(name.upper(), np.zeros((2, 3))).shape == (2, 3)
        assert viz.make_signal(name, np.linspace(0, 1, 7)).dtype == np.float64


def test_bad_names_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="signal"):
        viz.make_signal("triangle", np.zeros(3))
    with pytest.raises(ValueError, match="signal"):
        viz.plot_discretization(0.1, "bilinear", "noise")
    with pytest.raises(ValueError, match="method"):
        viz.plot_discretization(0.1, "rk4", "sine")
    with pytest.raises(ValueError, match="sample"):
        viz.plot_discretization(0.1, "zoh", "sine", sample="end")
    with pytest.raises(ValueError, match="step"):
        viz.discretization_run(0.0, "zoh", "sine")
    with pytest.raises(ValueError, match="step"):
        viz.discretization_run(20.0, "zoh", "sine")  # longer than t_end = 10 s


def test_signal_jumps() -> None:
    np.testing.assert_array_equal(viz.signal_jumps("square", 10.0), [2, 4, 6, 8, 10])
    np.testing.assert_array_equal(viz.signal_jumps("step", 10.0), [1.0])
    assert viz.signal_jumps("step", 0.5).size == 0
    assert viz.signal_jumps("chirp", 10.0).size == 0 and viz.signal_jumps("sine", 3.0).size == 0


@pytest.mark.parametrize("method", ["euler", "bilinear", "zoh"])
def test_title_reports_the_independent_error(method: str) -> None:
    fig = viz.plot_discretization(0.1, method, "sine")
    ax_u, ax_y = fig.axes
    assert ax_u.get_ylabel() == "input $u$" and ax_y.get_xlabel() == "time $t$ (s)"
    assert ax_y.get_ylabel() == "output $y$ = position (m)"
    title = ax_y.get_title()
    assert title.startswith(f"{method}, Δ = 0.1 s, start samples")
    reported = float(re.search(r"= ([0-9.e+-]+)$", title).group(1))
    expected = independent_error(0.1, method, "sine")
    assert reported == pytest.approx(expected, rel=6e-3)  # the title has 3 significant digits


def test_zoh_is_exact_for_piecewise_constant_input() -> None:
    for signal, step in [("square", 0.25), ("step", 0.125), ("square", 1.0)]:
        run = viz.discretization_run(step, "zoh", signal)
        assert run.error < 1e-10, (signal, step, run.error)
    # not exact when the jumps fall inside a step
    assert viz.discretization_run(0.3, "zoh", "square").error > 1e-3


def test_run_shapes_and_conventions() -> None:
    run = viz.discretization_run(0.5, "bilinear", "chirp", "midpoint")
    assert run.t_out.shape == run.y_out.shape == run.y_true.shape == run.u_in.shape == (20,)
    np.testing.assert_allclose(run.t_out, 0.5 * np.arange(1, 21))
    np.testing.assert_allclose(run.t_in, 0.5 * np.arange(20) + 0.25)
    np.testing.assert_allclose(run.u_in, np.sin(0.15 * run.t_in**2))
    assert run.error == pytest.approx(np.max(np.abs(run.y_out - run.y_true)), rel=0, abs=0)


def test_reference_matches_lsim_and_is_resolved() -> None:
    A, B, C = viz.default_system()
    t = np.linspace(0.0, 30.0, 20001)  # three chunks of the compiled simulate
    y = viz._simulate_chunked(A, B, C, np.sin(t), t)
    _, y_lsim, _ = scipy.signal.lsim((A, B[:, None], C[None, :], 0.0), np.sin(t), t)
    assert np.max(np.abs(y - y_lsim)) < 1e-12
    # the default reference grid resolves the smooth inputs to about 1e-6 (module docstring)
    t_needed = np.linspace(0.1, 10.0, 100)
    for signal in ("sine", "chirp"):
        _, _, coarse = viz.reference_output(A, B, C, signal, 10.0, t_needed)
        _, _, fine = viz.reference_output(A, B, C, signal, 10.0, t_needed, n_fine=4 * viz.N_FINE)
        assert np.max(np.abs(coarse - fine)) < 3e-6, signal


def test_fit_slope() -> None:
    steps = 2.0 ** -np.arange(3, 9)
    assert viz.fit_slope(steps, 0.7 * steps**1.5) == pytest.approx(1.5, abs=1e-12)
    with pytest.raises(ValueError, match="errors"):
        viz.fit_slope(steps, np.zeros_like(steps))
    with pytest.raises(ValueError, match="errors"):
        viz.fit_slope(steps, steps[:-1])


def test_errors_vs_step_orders() -> None:
    steps = np.array([1 / 32, 1 / 64])
    errs = viz.errors_vs_step(steps, "step", "start", t_end=4.0, n_fine=4 * 8192 + 1)
    assert errs["euler"][0] / errs["euler"][1] == pytest.approx(2.0, rel=0.1)
    assert errs["bilinear"][0] / errs["bilinear"][1] == pytest.approx(4.0, rel=0.02)
    assert np.all(errs["zoh"] < 1e-10)


def test_stability_figure_maps() -> None:
    fig = viz.plot_stability(marks=[-5.0])
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["Euler", "bilinear", "ZOH"]
    expected_z = {"Euler": 1 - 5.0, "bilinear": (1 - 2.5) / (1 + 2.5), "ZOH": np.exp(-5.0)}
    for ax in fig.axes:
        name = ax.get_title().split(":")[0]
        assert ax.get_xlabel() == "Re z"
        axis_line = next(line for line in ax.lines if line.get_label() == "image of the imaginary axis")
        z = axis_line.get_xdata() + 1j * axis_line.get_ydata()
        if name == "Euler":
            np.testing.assert_allclose(z.real, 1.0, atol=1e-15)
        else:  # bilinear and ZOH send the imaginary axis onto the unit circle
            np.testing.assert_allclose(np.abs(z), 1.0, atol=1e-12)
        mark = next(line for line in ax.lines if line.get_label().startswith("Δλ = -5"))
        assert mark.get_xdata()[0] == pytest.approx(expected_z[name], rel=1e-12)
        assert f"|z| = {abs(expected_z[name]):.3g}" in mark.get_label()


def test_stiff_system_and_figure() -> None:
    A, B, C = viz.stiff_system()
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), [-100.0, -0.05], rtol=1e-12)
    fig = viz.plot_stiff(0.05, t_end=3.0)
    ax_v, ax_e = fig.axes
    assert ax_v.get_ylabel() == "velocity $v$ (m/s)" and ax_e.get_ylabel() == "|error| (m/s)"
    labels = [t.get_text() for t in ax_e.get_legend().get_texts()]
    assert labels[0].startswith("euler") and float(labels[0].split("max ")[1].split(" ")[0]) > 1e6
    assert float(labels[2].split("max ")[1].split(" ")[0]) < 1e-10  # ZOH: the step input is held exactly


def test_methods_figure_and_animation() -> None:
    fig = viz.plot_methods(0.5, "square")
    assert len(fig.axes) == 4
    assert [ax.get_title().split(",")[0] for ax in fig.axes[1:]] == ["euler", "bilinear", "zoh"]
    anim = viz.discretization_animation([0.5, 1.0], ("euler", "zoh"), "square", "start")
    assert len(list(anim.new_frame_seq())) == 2
    anim._draw_was_started = True  # not rendered on purpose: silence matplotlib's "deleted without rendering"
    with pytest.raises(ValueError, match="steps"):
        viz.discretization_animation([])
