r"""Helpers for chapter 1 (state space models): two small physical SSMs and their plots.

* **The car.** State :math:`x = (p, v)` (position in m, velocity in m/s), input :math:`u = F` (net
  engine/brake force in N), linear drag :math:`c` (N·s/m), mass :math:`m` (kg):

  .. math::
      p' = v, \qquad v' = -\tfrac{c}{m} v + \tfrac{1}{m} F, \qquad y = 3.6\, v \ \text{(speedometer, km/h)}.

* **The damped oscillator** (mass on a spring, unit mass): position :math:`q`, velocity :math:`q'`,

  .. math::
      q'' + 2\zeta\omega_0 q' + \omega_0^2 q = u, \qquad
      A = \begin{pmatrix} 0 & 1 \\ -\omega_0^2 & -2\zeta\omega_0 \end{pmatrix},\quad
      \lambda_\pm = \omega_0\bigl(-\zeta \pm \sqrt{\zeta^2 - 1}\bigr).

Matrices are returned as float64 NumPy arrays ``A (2,2), B (2,), C (2,), D ()`` so that they stay float64
whatever JAX's precision setting. Every ``plot_*`` function returns a matplotlib Figure (the widget
callbacks of the chapter) and never calls ``plt.show``.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from .. import _check
from ..ssm import simulate

CAR_MASS = 1000.0  # kg
CAR_DRAG = 50.0  # N·s/m  (time constant m/c = 20 s)
MS_TO_KMH = 3.6  # (km/h) / (m/s)

#: (time in s, force in N) corners of the drive: accelerate, ease off to cruise, brake, release.
#: The force is linear between corners (all at whole seconds), so :func:`s4lite.ssm.simulate` is
#: exact on any grid that contains the whole seconds.
DRIVE_KNOTS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (1.0, 2000.0),
    (12.0, 2000.0),
    (13.0, 800.0),
    (30.0, 800.0),
    (31.0, -3700.0),
    (34.0, -3700.0),
    (35.0, 0.0),
    (40.0, 0.0),
)

#: Samples of every oscillator plot. ``simulate`` compiles once per input length (seconds on a small
#: CPU), so the chapter uses this one length, the same as its car drive (40 s every 50 ms).
N_SAMPLES = 801


def car_ssm(mass: float = CAR_MASS, drag: float = CAR_DRAG) -> tuple[np.ndarray, ...]:
    r"""The car as an SSM: ``(A, B, C, D)`` with state (position m, velocity m/s), input force N, output km/h.

    .. math::
        A = \begin{pmatrix} 0 & 1 \\ 0 & -c/m \end{pmatrix},\quad
        B = \begin{pmatrix} 0 \\ 1/m \end{pmatrix},\quad C = (0,\ 3.6),\quad D = 0.
    """
    _check.positive("mass", mass)
    if not np.isfinite(drag) or drag < 0:
        raise ValueError(f"drag: expected a finite number >= 0, got {drag!r}")
    A = np.array([[0.0, 1.0], [0.0, -drag / mass]])
    B = np.array([0.0, 1.0 / mass])
    C = np.array([0.0, MS_TO_KMH])
    return A, B, C, np.array(0.0)


def drive_profile(t: Any) -> np.ndarray:
    """Force (N) of the drive at times ``t`` (s): linear interpolation of :data:`DRIVE_KNOTS`; shape of ``t``."""
    t = np.asarray(t, dtype=np.float64)
    knots = np.asarray(DRIVE_KNOTS)
    return np.interp(t, knots[:, 0], knots[:, 1])


def plot_drive(t: Any, u: Any, x: Any, y: Any) -> Figure:
    """Four stacked panels sharing the time axis: input force, the two states, and the speedometer output.

    Shapes: ``t, u, y (L,)``, ``x (L, 2)``.
    """
    t, u, y = (np.asarray(v, dtype=np.float64) for v in (t, u, y))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape != (t.shape[0], 2):
        raise ValueError(f"x: expected shape (L, 2) = ({t.shape[0]}, 2), got {x.shape}")
    fig, axes = plt.subplots(4, 1, figsize=(8, 7.2), sharex=True)
    rows = [
        (u / 1000, "force $u$ (kN)", "input: throttle (+) / brake (−)", "C3"),
        (x[:, 0], "position $x_1$ (m)", "state 1: position", "C0"),
        (x[:, 1], "velocity $x_2$ (m/s)", "state 2: velocity", "C0"),
        (y, "speedometer $y$ (km/h)", "output: $y = Cx = 3.6\\,x_2$", "C2"),
    ]
    for ax, (values, label, title, color) in zip(axes, rows):
        ax.plot(t, values, color=color)
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=10, loc="left")
        ax.axhline(0, color="0.7", lw=0.8, zorder=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time $t$ (s)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The damped oscillator
# --------------------------------------------------------------------------------------------------


def _finite(name: str, value: Any) -> float:
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return v


def oscillator_ssm(omega: float, zeta: float) -> tuple[np.ndarray, ...]:
    r"""Mass–spring–damper ``(A, B, C, D)``: natural frequency ``omega`` (rad/s, > 0), damping ratio ``zeta``.

    State (position, velocity), input a force per unit mass, output the position:
    :math:`A = \begin{pmatrix} 0 & 1 \\ -\omega_0^2 & -2\zeta\omega_0\end{pmatrix}`, :math:`B = (0, 1)`,
    :math:`C = (1, 0)`, :math:`D = 0`.
    """
    _check.positive("omega", omega)
    omega, zeta = float(omega), _finite("zeta", zeta)
    A = np.array([[0.0, 1.0], [-(omega**2), -2.0 * zeta * omega]])
    return A, np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array(0.0)


def oscillator_eigenvalues(omega: float, zeta: float) -> np.ndarray:
    r"""Closed form of the eigenvalues of :func:`oscillator_ssm`: :math:`\omega_0(-\zeta \pm \sqrt{\zeta^2-1})`.

    Returns complex128 ``(2,)``, the ``+`` root first (the one with the larger real part when
    :math:`\zeta \ge 1`, the one with positive imaginary part when :math:`|\zeta| < 1`).
    """
    _check.positive("omega", omega)
    omega, zeta = float(omega), _finite("zeta", zeta)
    root = np.sqrt(complex(zeta**2 - 1.0))
    return np.array([omega * (-zeta + root), omega * (-zeta - root)], dtype=np.complex128)


def free_response(omega: float, zeta: float, t: Any, x0: Sequence[float] = (1.0, 0.0)) -> np.ndarray:
    """Position ``(L,)`` of the oscillator released from ``x0`` = (position, velocity) with no input, by ``simulate``."""
    A, B, C, D = oscillator_ssm(omega, zeta)
    t = np.asarray(t, dtype=np.float64)
    y, _ = simulate(A, B, C, D, np.zeros_like(t), t, np.asarray(x0, dtype=np.float64))
    return np.asarray(y)


def measure_oscillation(t: Any, q: Any) -> tuple[float, float]:
    r"""Measure ``(period, rate)`` of a damped oscillation :math:`q(t) = a e^{\sigma t}\cos(\omega_d t + \varphi)`.

    * period: twice the spacing of the zero crossings (each located by linear interpolation between
      samples), fitted by least squares over all crossings; it estimates :math:`2\pi/\omega_d`;
    * rate: slope of :math:`\log q` at the positive peaks (each refined by a parabola through the three
      samples around it) against the peak times; it estimates :math:`\sigma = \operatorname{Re}\lambda`.

    ``t, q``: ``(L,)`` with uniformly spaced ``t``. Needs at least three crossings and two positive peaks.
    """
    t = np.asarray(t, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if t.ndim != 1 or q.shape != t.shape:
        raise ValueError(f"q: expected the shape of t {t.shape}, got {q.shape}")
    i = np.nonzero(q[:-1] * q[1:] < 0)[0]
    crossings = t[i] - q[i] * (t[i + 1] - t[i]) / (q[i + 1] - q[i])
    j = np.nonzero((q[1:-1] > q[:-2]) & (q[1:-1] >= q[2:]) & (q[1:-1] > 0))[0] + 1
    if crossings.shape[0] < 3 or j.shape[0] < 2:
        raise ValueError("q: expected an oscillation with at least three zero crossings and two positive peaks")
    half_period = np.polyfit(np.arange(crossings.shape[0]), crossings, 1)[0]
    h = t[1] - t[0]
    a, b, c = q[j - 1], q[j], q[j + 1]
    curv = a - 2 * b + c
    shift = 0.5 * (a - c) / curv  # vertex of the parabola, in samples from j
    peak_t = t[j] + shift * h
    peak_q = b - 0.25 * (a - c) * shift
    rate = np.polyfit(peak_t, np.log(peak_q), 1)[0]
    return float(2 * half_period), float(rate)


def _draw_eigen_plane(ax: plt.Axes, eigs: np.ndarray, color: str, label: str | None, lim: float) -> None:
    ax.scatter(eigs.real, eigs.imag, marker="x", s=70, lw=2, color=color, label=label, zorder=3)
    ax.set_xlim(-lim, 0.35 * lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")


def _style_eigen_plane(ax: plt.Axes) -> None:
    ax.axvspan(-1e3, 0, color="C2", alpha=0.08, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    ax.axhline(0, color="k", lw=0.8)
    ax.text(0.03, 0.97, "stable: Re λ < 0", transform=ax.transAxes, va="top", fontsize=9, color="C2")
    ax.set_xlabel("Re λ  (decay rate, 1/s)")
    ax.set_ylabel("Im λ  (angular frequency, rad/s)")
    ax.grid(alpha=0.3)


def plot_oscillator(omega: float, zeta: float, t_end: float = 10.0) -> Figure:
    r"""Widget callback: eigenvalues of A in the complex plane (left) and the free response (right).

    The response starts at position 1 m, velocity 0. For :math:`|\zeta| < 1` the dashed envelope is
    :math:`\pm e^{\operatorname{Re}\lambda\, t}/\sqrt{1-\zeta^2}`, the amplitude of
    :math:`e^{\operatorname{Re}\lambda t}(\cos\omega_d t + \tfrac{\zeta}{\sqrt{1-\zeta^2}}\sin\omega_d t)`.
    """
    eigs = oscillator_eigenvalues(omega, zeta)
    _check.positive("t_end", t_end)
    t = np.linspace(0.0, float(t_end), N_SAMPLES)
    q = free_response(omega, zeta, t)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.6]})
    lim = 1.2 * max(np.max(np.abs(eigs)), 0.5)
    _style_eigen_plane(ax0)
    _draw_eigen_plane(ax0, eigs, "C3", None, lim)
    ax0.set_title(f"eigenvalues of A: λ = {_fmt_complex(eigs[0])}\nand {_fmt_complex(eigs[1])}", fontsize=10)

    ax1.plot(t, q, color="C0", label="position $q(t)$")
    sigma = float(np.max(eigs.real))
    if abs(zeta) < 1:
        env = np.exp(sigma * t) / np.sqrt(1 - zeta**2)
        ax1.plot(t, env, "--", color="0.5", lw=1, label="envelope ± exp(Re λ · t) / √(1 − ζ²)")
        ax1.plot(t, -env, "--", color="0.5", lw=1)
        period = 2 * np.pi / abs(eigs[0].imag)
        kind = f"oscillates with period 2π/Im λ = {period:.2f} s"
    else:
        kind = "no oscillation (real eigenvalues)"
    if sigma < 0:
        decay = f"decay time 1/|Re λ| = {1 / abs(sigma):.2f} s"
    else:
        decay = "no decay (Re λ = 0)" if sigma == 0 else "grows: Re λ > 0 (unstable)"
    ax1.set_title(f"ω₀ = {omega:.2f} rad/s, ζ = {zeta:.2f}: {kind}\n{decay}", fontsize=10)
    ax1.axhline(0, color="0.7", lw=0.8, zorder=0)
    ax1.set_xlabel("time $t$ (s)")
    ax1.set_ylabel("position $q$ (m)")
    bound = max(1.1, 1.1 * float(np.max(np.abs(q[: len(q) // 2]))))
    ax1.set_ylim(-bound, bound)
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _fmt_complex(z: complex) -> str:
    sign = "+" if z.imag >= 0 else "−"
    return f"{z.real:.2f} {sign} {abs(z.imag):.2f}i"


def plot_oscillator_family(omega: float, zetas: Sequence[float], t_end: float = 10.0) -> Figure:
    """Eigenvalues (left) and free responses (right) for several damping ratios, one colour per ``zeta``."""
    if len(zetas) < 1:
        raise ValueError("zetas: expected at least one damping ratio")
    t = np.linspace(0.0, float(t_end), N_SAMPLES)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.6]})
    _style_eigen_plane(ax0)
    lim = 1.2 * float(omega) * max(1.0, max(abs(z) + np.sqrt(max(z * z - 1, 0)) for z in zetas))
    for i, zeta in enumerate(zetas):
        color = f"C{i}"
        _draw_eigen_plane(ax0, oscillator_eigenvalues(omega, zeta), color, f"ζ = {zeta:g}", lim)
        ax1.plot(t, free_response(omega, zeta, t), color=color, label=f"ζ = {zeta:g}")
    ax0.set_title(f"eigenvalues of A (ω₀ = {omega:g} rad/s)", fontsize=10)  # colours: legend on the right
    ax1.set_title("free response from $q(0) = 1$ m, $q'(0) = 0$", fontsize=10)
    ax1.axhline(0, color="0.7", lw=0.8, zorder=0)
    ax1.set_xlabel("time $t$ (s)")
    ax1.set_ylabel("position $q$ (m)")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def oscillator_animation(omega: float, zetas: Sequence[float], dpi: int = 72) -> FuncAnimation:
    """A frame per damping ratio in ``zetas``: the same two panels as :func:`plot_oscillator`.

    Each frame is drawn into one figure (``animation._fig``); turn it into HTML with ``to_jshtml()``.
    """
    zetas = [float(z) for z in zetas]
    if not zetas:
        raise ValueError("zetas: expected at least one damping ratio")
    t = np.linspace(0.0, 10.0, N_SAMPLES)
    responses = [free_response(omega, z, t) for z in zetas]
    eigs = [oscillator_eigenvalues(omega, z) for z in zetas]
    lim = 1.2 * max(float(np.max(np.abs(e))) for e in eigs)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=dpi, gridspec_kw={"width_ratios": [1, 1.6]})

    def draw(i: int) -> list:
        ax0.clear()
        ax1.clear()
        _style_eigen_plane(ax0)
        _draw_eigen_plane(ax0, eigs[i], "C3", None, lim)
        ax0.set_title(f"ζ = {zetas[i]:.2f}: λ = {_fmt_complex(eigs[i][0])}", fontsize=9)
        ax1.plot(t, responses[i], color="C0")
        ax1.axhline(0, color="0.7", lw=0.8, zorder=0)
        ax1.set_ylim(-1.1, 1.1)
        ax1.set_xlabel("time $t$ (s)")
        ax1.set_ylabel("position $q$ (m)")
        ax1.set_title(f"free response, ω₀ = {omega:g} rad/s, ζ = {zetas[i]:.2f}", fontsize=9)
        ax1.grid(alpha=0.3)
        fig.tight_layout()
        return []

    return FuncAnimation(fig, draw, frames=len(zetas), interval=400, blit=False)
