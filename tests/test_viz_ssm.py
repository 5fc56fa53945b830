"""Chapter 1 helpers (s4lite.viz.ssm): the car and oscillator SSMs, the measurement helper, the figures.

Oracles: NumPy eigenvalues, scipy.signal.lsim, closed-form damped cosines. Every figure is closed.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.signal  # noqa: E402

from s4lite.viz import ssm as viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_car_ssm_matrices() -> None:
    A, B, C, D = viz.car_ssm(mass=1200.0, drag=60.0)
    np.testing.assert_allclose(A, [[0.0, 1.0], [0.0, -0.05]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(B, [0.0, 1 / 1200.0], rtol=1e-15)
    np.testing.assert_allclose(C, [0.0, 3.6], rtol=0)
    assert float(D) == 0.0
    with pytest.raises(ValueError, match="mass"):
        viz.car_ssm(mass=0.0)
    with pytest.raises(ValueError, match="drag"):
        viz.car_ssm(drag=-1.0)


def test_drive_profile_corners_and_shape() -> None:
    knots = np.asarray(viz.DRIVE_KNOTS)
    np.testing.assert_array_equal(viz.drive_profile(knots[:, 0]), knots[:, 1])
    assert viz.drive_profile(np.zeros((3, 4))).shape == (3, 4)
    # halfway between two corners the force is the average (linear pieces)
    mid = 0.5 * (knots[1:, 0] + knots[:-1, 0])
    np.testing.assert_allclose(viz.drive_profile(mid), 0.5 * (knots[1:, 1] + knots[:-1, 1]), rtol=0, atol=1e-12)


def test_plot_drive_labels_and_checks() -> None:
    t = np.linspace(0, 40, 81)
    u = viz.drive_profile(t)
    x = np.stack([t, np.ones_like(t)], axis=1)
    fig = viz.plot_drive(t, u, x, 3.6 * x[:, 1])
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["force $u$ (kN)", "position $x_1$ (m)", "velocity $x_2$ (m/s)", "speedometer $y$ (km/h)"]
    assert fig.axes[-1].get_xlabel() == "time $t$ (s)"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), u / 1000)  # the input is drawn in kN
    with pytest.raises(ValueError, match="x"):
        viz.plot_drive(t, u, x[:, :1], x[:, 0])


@pytest.mark.parametrize("zeta", [-0.1, 0.0, 0.15, 0.7, 1.5, 3.0])
def test_oscillator_eigenvalues_match_numpy(zeta: float) -> None:
    A, B, C, D = viz.oscillator_ssm(2.5, zeta)
    formula = np.sort_complex(viz.oscillator_eigenvalues(2.5, zeta))
    numeric = np.sort_complex(np.linalg.eigvals(A))
    np.testing.assert_allclose(formula, numeric, rtol=0, atol=1e-12)
    assert B.tolist() == [0.0, 1.0] and C.tolist() == [1.0, 0.0] and float(D) == 0.0


def test_oscillator_bad_arguments() -> None:
    with pytest.raises(ValueError, match="omega"):
        viz.oscillator_ssm(0.0, 0.1)
    with pytest.raises(ValueError, match="zeta"):
        viz.oscillator_eigenvalues(1.0, float("nan"))


def test_measure_oscillation_on_a_closed_form() -> None:
    sigma, omega_d, phase = -0.23, 1.7, 0.4
    t = np.linspace(0, 20, 2001)
    q = 1.3 * np.exp(sigma * t) * np.cos(omega_d * t + phase)
    period, rate = viz.measure_oscillation(t, q)
    assert abs(period - 2 * np.pi / omega_d) < 1e-5
    assert abs(rate - sigma) < 1e-5
    with pytest.raises(ValueError, match="q"):
        viz.measure_oscillation(t, np.exp(-t))  # no oscillation
    with pytest.raises(ValueError, match="q"):
        viz.measure_oscillation(t, q[:-1])


def test_free_response_matches_lsim() -> None:
    t = np.linspace(0, 10, viz.N_SAMPLES)
    A, B, C, D = viz.oscillator_ssm(2.0, 0.15)
    _, ref, _ = scipy.signal.lsim((A, B[:, None], C[None, :], D), np.zeros_like(t), t, X0=[1.0, 0.0])
    q = viz.free_response(2.0, 0.15, t)
    assert np.max(np.abs(q - ref)) < 1e-10


def test_plot_oscillator_reports_the_right_numbers() -> None:
    fig = viz.plot_oscillator(2.0, 0.15)
    ax_eig, ax_q = fig.axes
    assert ax_eig.get_xlabel().startswith("Re λ") and ax_eig.get_ylabel().startswith("Im λ")
    assert ax_q.get_xlabel() == "time $t$ (s)" and ax_q.get_ylabel() == "position $q$ (m)"
    # the scattered eigenvalues are the roots of s² + 2ζω₀ s + ω₀²
    pts = ax_eig.collections[-1].get_offsets()
    roots = np.roots([1.0, 2 * 0.15 * 2.0, 4.0])
    np.testing.assert_allclose(np.sort_complex(pts[:, 0] + 1j * pts[:, 1]), np.sort_complex(roots), atol=1e-12)
    period = 2 * np.pi / (2.0 * np.sqrt(1 - 0.15**2))
    assert f"period 2π/Im λ = {period:.2f} s" in ax_q.get_title()
    assert f"decay time 1/|Re λ| = {1 / 0.3:.2f} s" in ax_q.get_title()
    assert "no oscillation" in viz.plot_oscillator(2.0, 1.5).axes[1].get_title()
    assert "no decay" in viz.plot_oscillator(2.0, 0.0).axes[1].get_title()


def test_oscillator_family_and_animation() -> None:
    fig = viz.plot_oscillator_family(2.0, [0.1, 1.0])
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["ζ = 0.1", "ζ = 1"]
    anim = viz.oscillator_animation(2.0, [0.1, 0.5, 1.2])
    assert len(list(anim.new_frame_seq())) == 3
    anim._draw_was_started = True  # not rendered on purpose: silence matplotlib's "deleted without rendering"
    with pytest.raises(ValueError, match="zetas"):
        viz.oscillator_animation(2.0, [])
