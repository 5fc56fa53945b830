r"""Helpers for chapter 2 (discretization): test signals, discrete-vs-continuous runs, and their plots.

Timing convention (the one every function here uses). Step :math:`k = 0, 1, \dots, L-1` covers the
interval :math:`[k\Delta, (k+1)\Delta]`. The recurrence :math:`x_k = \bar A x_{k-1} + \bar B u_k`
(:func:`s4lite.recurrence.scan_ssm`, :math:`x_{-1} = x(0) = 0`) reads one input sample per step and
:math:`x_k` is compared with the exact state at the *end* of the step, :math:`x((k+1)\Delta)`.
The input sample is taken at the start of the step, :math:`u_k = u(k\Delta)` (``sample="start"``, the
sample-and-hold convention) or at its middle, :math:`u_k = u((k+\tfrac12)\Delta)` (``sample="midpoint"``).

The exact ("continuous") answer comes from :func:`s4lite.ssm.simulate`, which is exact for inputs that
are linear between its sample times. Jumps of the step and square inputs are given to it as ramps of
width :data:`JUMP_RAMP` (1e-12 s), so their reference is exact to about 1e-12; smooth inputs are
sampled every ``t_end / (n_fine - 1)`` seconds, an interpolation error of order
:math:`h^2 \max|u''| / 8` (about 1e-6 for the default grid, see the tests).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter

from .. import _check
from ..discretize import METHODS, discretize
from ..recurrence import scan_ssm
from ..ssm import simulate
from .ssm import CAR_DRAG, CAR_MASS, oscillator_ssm

SIGNALS = ("step", "sine", "square", "chirp")
SAMPLES = ("start", "midpoint")
T_END = 10.0  # s, the horizon of the widget
N_FINE = 4096  # reference points on [0, t_end] (plus the discrete times and the jumps)
JUMP_RAMP = 1e-12  # s: a jump of the input is a linear ramp this short in the reference
OMEGA0, ZETA0 = 2.0, 0.15  # the test system: chapter 1's oscillator, ω₀ = 2 rad/s, ζ = 0.15
METHOD_COLORS = {"euler": "C3", "bilinear": "C0", "zoh": "C2"}

_simulate_jit = jax.jit(simulate)
_scan_jit = jax.jit(scan_ssm)


# --------------------------------------------------------------------------------------------------
# Signals and systems
# --------------------------------------------------------------------------------------------------


def make_signal(signal: str, t: Any) -> np.ndarray:
    r"""Input ``signal`` at times ``t`` (s); float64 with the shape of ``t``.

    * ``step``: :math:`u = 1` for :math:`t \ge 1`, else 0;
    * ``sine``: :math:`u = \sin t` (1 rad/s);
    * ``square``: +1 on :math:`[0, 2)`, −1 on :math:`[2, 4)`, … (period 4 s, right-continuous);
    * ``chirp``: :math:`u = \sin(0.15\, t^2)`, angular frequency :math:`0.3\,t` rad/s (it crosses the test
      system's resonance, 2 rad/s, near :math:`t = 6.7` s).
    """
    signal = _check.choice("signal", signal, SIGNALS)
    t = np.asarray(t, dtype=np.float64)
    if signal == "step":
        return np.where(t >= 1.0, 1.0, 0.0)
    if signal == "sine":
        return np.sin(t)
    if signal == "square":
        return np.where(np.floor(t / 2.0) % 2 == 0, 1.0, -1.0)
    return np.sin(0.15 * t**2)


def signal_jumps(signal: str, t_end: float) -> np.ndarray:
    """Times in ``(0, t_end]`` where ``signal`` jumps (empty for the smooth ones); float64 ``(J,)``."""
    signal = _check.choice("signal", signal, SIGNALS)
    _check.positive("t_end", t_end)
    if signal == "step":
        return np.array([1.0]) if t_end >= 1.0 else np.zeros(0)
    if signal == "square":
        return np.arange(2.0, float(t_end) + 1e-12, 2.0)
    return np.zeros(0)


def default_system() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test system ``(A, B, C)``: the damped oscillator of chapter 1 with ω₀ = 2 rad/s, ζ = 0.15."""
    A, B, C, _ = oscillator_ssm(OMEGA0, ZETA0)
    return A, B, C


def stiff_system(tau: float = 0.01, mass: float = CAR_MASS, drag: float = CAR_DRAG) -> tuple[np.ndarray, ...]:
    r"""Chapter 1's car with an engine that reaches the commanded force with time constant ``tau`` (s).

    State (velocity m/s, engine force kN), input the commanded force (kN), output the velocity:

    .. math::
        v' = -\tfrac{c}{m} v + \tfrac{1000}{m} F, \qquad F' = \tfrac{1}{\tau}(u - F),

    so the eigenvalues are :math:`-c/m = -0.05` /s and :math:`-1/\tau = -100` /s: two time scales
    2000× apart (a *stiff* system). Returns ``(A, B, C)``.
    """
    _check.positive("tau", tau)
    _check.positive("mass", mass)
    A = np.array([[-drag / mass, 1000.0 / mass], [0.0, -1.0 / tau]])
    return A, np.array([0.0, 1.0 / tau]), np.array([1.0, 0.0])


# --------------------------------------------------------------------------------------------------
# Reference (continuous) and discrete runs
# --------------------------------------------------------------------------------------------------


CHUNK = 8192  # every call of the compiled simulate has this many samples: one compilation per process


def _bucket(n: int) -> int:
    """A padded length for the scan: powers of two, so few distinct lengths and few compilations."""
    return max(64, 1 << (n - 1).bit_length())


def _simulate_chunked(A: Any, B: Any, C: Any, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``simulate(A, B, C, 0, u, t)[0]`` computed in pieces of :data:`CHUNK` samples.

    Consecutive pieces share their boundary sample and hand over the state there (``x0``), which is
    exactly how ``simulate`` itself steps from one interval to the next; the last piece is padded with
    later times. Fixed-size pieces keep the JIT compilation to one, whatever the length of ``t``.
    """
    n = t.shape[0]
    h = (t[-1] - t[0]) / max(n - 1, 1) if n > 1 else 1.0
    x0 = np.zeros(np.asarray(A).shape[0])
    out = [np.zeros(0)]
    start = 0
    while True:
        stop = min(start + CHUNK, n)
        t_seg, u_seg = t[start:stop], u[start:stop]
        if stop - start < CHUNK:
            extra = t_seg[-1] + h * np.arange(1, CHUNK - (stop - start) + 1)
            t_seg = np.concatenate([t_seg, extra])
            u_seg = np.concatenate([u_seg, np.full(extra.shape, u_seg[-1])])
        y, x = _simulate_jit(A, B, C, 0.0, u_seg, t_seg, x0)
        y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
        out.append(y[: stop - start] if start == 0 else y[1 : stop - start])
        if stop == n:
            return np.concatenate(out)
        x0 = x[stop - start - 1]
        start = stop - 1


def reference_output(
    A: Any, B: Any, C: Any, signal: str, t_end: float, t_needed: Any, n_fine: int = N_FINE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact output of x' = Ax + Bu(t), y = Cx from rest, by :func:`s4lite.ssm.simulate`.

    Returns ``(t_grid, y_grid, y_needed)``: the output on a grid of ``[0, t_end]`` that holds ``n_fine``
    uniform points, every time in ``t_needed`` and every jump of the input (as a :data:`JUMP_RAMP`
    ramp), and the output at the times ``t_needed`` themselves (looked up, not interpolated).
    """
    _check.length("n_fine", n_fine)
    t_needed = np.asarray(t_needed, dtype=np.float64).reshape(-1)
    if t_needed.size and (t_needed.min() < 0 or t_needed.max() > t_end * (1 + 1e-9)):
        raise ValueError(f"t_needed: expected times in [0, t_end={t_end}]")
    jumps = signal_jumps(signal, t_end)
    grid = np.unique(np.concatenate([np.linspace(0.0, t_end, n_fine), t_needed, jumps, jumps - JUMP_RAMP]))
    y = _simulate_chunked(A, B, C, make_signal(signal, grid), grid)
    return grid, y, y[np.searchsorted(grid, t_needed)]


def discrete_output(
    A: Any, B: Any, C: Any, step: float, method: str, signal: str, sample: str, t_end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Discretize with ``method`` and run :func:`s4lite.recurrence.scan_ssm` over ``L = ⌊t_end/Δ⌋`` steps.

    Returns ``(t_in, u_in, t_out, y_out)``: sample times :math:`k\Delta` or :math:`(k+\tfrac12)\Delta`,
    the samples, the end-of-step times :math:`(k+1)\Delta` and :math:`y_k = C x_k`; all ``(L,)``.
    """
    _check.positive("step", step)
    method = _check.choice("method", method, METHODS)
    sample = _check.choice("sample", sample, SAMPLES)
    step = float(step)
    L = int(np.floor(t_end / step + 1e-9))
    if L < 1:
        raise ValueError(f"step: expected a step no longer than t_end = {t_end} s, got {step}")
    k = np.arange(L, dtype=np.float64)
    t_in = (k + (0.5 if sample == "midpoint" else 0.0)) * step
    u_in = make_signal(signal, t_in)
    Ab, Bb = discretize(A, B, step, method)
    u_pad = np.zeros(_bucket(L))
    u_pad[:L] = u_in
    y, _ = _scan_jit(Ab, Bb, C, u_pad)  # causal: the zero padding after step L-1 changes nothing before it
    return t_in, u_in, (k + 1) * step, np.asarray(y, dtype=np.float64)[:L]


class DiscreteRun(NamedTuple):
    """One discretized run next to the exact answer (all arrays float64)."""

    step: float
    method: str
    signal: str
    sample: str
    t_grid: np.ndarray  # (G,) reference times
    y_grid: np.ndarray  # (G,) exact output there
    t_in: np.ndarray  # (L,) input sample times
    u_in: np.ndarray  # (L,) input samples u_k
    t_out: np.ndarray  # (L,) (k+1)Δ
    y_out: np.ndarray  # (L,) discrete output y_k
    y_true: np.ndarray  # (L,) exact output at (k+1)Δ
    error: float  # max_k |y_k − y((k+1)Δ)|


def discretization_run(
    step: float,
    method: str,
    signal: str,
    sample: str = "start",
    *,
    system: tuple[Any, Any, Any] | None = None,
    t_end: float = T_END,
    n_fine: int = N_FINE,
) -> DiscreteRun:
    """The discrete run of ``system`` (default :func:`default_system`) and its exact reference; see the module doc."""
    _check.positive("t_end", t_end)
    signal = _check.choice("signal", signal, SIGNALS)
    A, B, C = default_system() if system is None else system
    t_in, u_in, t_out, y_out = discrete_output(A, B, C, step, method, signal, sample, t_end)
    t_grid, y_grid, y_true = reference_output(A, B, C, signal, t_end, t_out, n_fine)
    with np.errstate(invalid="ignore", over="ignore"):
        error = float(np.max(np.abs(y_out - y_true)))
    return DiscreteRun(float(step), method.lower(), signal, sample.lower(), t_grid, y_grid, t_in, u_in, t_out, y_out, y_true, error)


def errors_vs_step(
    steps: Sequence[float],
    signal: str,
    sample: str = "start",
    methods: Sequence[str] = METHODS,
    *,
    system: tuple[Any, Any, Any] | None = None,
    t_end: float = 8.0,
    n_fine: int = 8 * 8192 + 1,
) -> dict[str, np.ndarray]:
    r"""``{method: errors (S,)}`` with error :math:`\max_k |y_k - y((k+1)\Delta)|` for each step in ``steps``.

    One reference run serves all steps: its grid holds every discrete time of every step. With
    power-of-two steps and the default ``n_fine`` (spacing :math:`2^{-13}` s over 8 s) those times are
    already grid points.
    """
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    if steps.size < 1:
        raise ValueError("steps: expected at least one step size")
    A, B, C = default_system() if system is None else system
    runs = {
        m: [discrete_output(A, B, C, s, m, signal, sample, t_end) for s in steps] for m in methods
    }
    t_all = np.concatenate([r[2] for r in runs[methods[0]]])
    _, _, y_all = reference_output(A, B, C, signal, t_end, t_all, n_fine)
    out: dict[str, np.ndarray] = {}
    for m in methods:
        errs, start = [], 0
        for _, _, t_out, y_out in runs[m]:
            y_true = y_all[start : start + t_out.shape[0]]
            start += t_out.shape[0]
            errs.append(float(np.max(np.abs(y_out - y_true))))
        out[m] = np.array(errs)
    return out


def fit_slope(steps: Any, errors: Any) -> float:
    r"""Least-squares slope :math:`p` of :math:`\log \text{error} = p \log \Delta + c`: the measured order."""
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    if steps.shape != errors.shape or steps.size < 2:
        raise ValueError(f"errors: expected the shape of steps {steps.shape} with at least 2 points, got {errors.shape}")
    if not (np.all(steps > 0) and np.all(errors > 0) and np.all(np.isfinite(errors))):
        raise ValueError("errors: expected finite positive steps and errors (a log-log fit)")
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def discrete_eigenvalue(w: Any, method: str) -> np.ndarray:
    r"""Where ``method`` sends :math:`w = \Delta\lambda`: the 1×1 :math:`\bar A` of :math:`A = (\lambda)`, step Δ = 1.

    Computed with :func:`s4lite.discretize.discretize` itself (vectorized with ``jax.vmap``), so it is
    :math:`1 + w`, :math:`(1 + w/2)/(1 - w/2)` or :math:`e^{w}`. Shape of ``w``, complex128.
    """
    method = _check.choice("method", method, METHODS)
    w = np.asarray(w, dtype=np.complex128)

    def one(lam: jax.Array) -> jax.Array:
        Ab, _ = discretize(lam.reshape(1, 1), np.ones(1, dtype=np.complex128), 1.0, method)
        return Ab[0, 0]

    z = jax.vmap(one)(w.reshape(-1))
    return np.asarray(z, dtype=np.complex128).reshape(w.shape)


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------


def _title(run: DiscreteRun) -> str:
    return f"{run.method}, Δ = {run.step:.3g} s, {run.sample} samples: max |y_k − y((k+1)Δ)| = {run.error:.2e}"


def _draw_input(ax: plt.Axes, run: DiscreteRun) -> None:
    t = np.linspace(0.0, run.t_grid[-1], 2000)
    ax.plot(t, make_signal(run.signal, t), color="0.3", lw=1, label="$u(t)$")
    edges = np.concatenate([[0.0], run.t_out])
    ax.stairs(run.u_in, edges, color="C1", lw=1.2, label="$u_k$ held over step $k$")
    if run.t_in.shape[0] <= 200:
        ax.plot(run.t_in, run.u_in, "o", color="C1", ms=3)
    ax.set_ylabel("input $u$")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncol=2, frameon=False, borderaxespad=0.1)
    ax.grid(alpha=0.3)


def _draw_output(ax: plt.Axes, run: DiscreteRun, title: bool = True) -> None:
    color = METHOD_COLORS[run.method]
    ax.plot(run.t_grid, run.y_grid, color="k", lw=1.2, label="continuous $y(t)$ (simulate)")
    ms = 5 if run.t_out.shape[0] <= 60 else 3 if run.t_out.shape[0] <= 300 else 1.5
    ax.plot(run.t_out, run.y_out, "o", color=color, ms=ms, label=f"discrete $y_k$ ({run.method})")
    lo, hi = float(run.y_grid.min()), float(run.y_grid.max())
    pad = 0.25 * max(hi - lo, 1e-12)
    ax.set_ylim(lo - pad, hi + pad)
    with np.errstate(invalid="ignore"):
        peak = float(np.nanmax(np.abs(run.y_out))) if run.y_out.size else 0.0
    if not (lo - pad <= np.nanmin(run.y_out) and np.nanmax(run.y_out) <= hi + pad):
        ax.plot([], [], " ", label=f"(leaves the plot: max |y_k| = {peak:.1e})")
    if title:
        ax.set_title(_title(run), fontsize=10)
    ax.set_ylabel("output $y$ = position (m)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)


def plot_discretization(step: float, method: str, signal: str, sample: str = "start") -> Figure:
    """Widget callback: input (top) and discrete output markers over the exact output line (bottom).

    The title reports ``max_k |y_k − y((k+1)Δ)|`` of :func:`discretization_run`.
    """
    run = discretization_run(step, method, signal, sample)
    fig, (ax_u, ax_y) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    _draw_input(ax_u, run)
    _draw_output(ax_y, run)
    ax_y.set_xlabel("time $t$ (s)")
    fig.tight_layout()
    return fig


def plot_methods(step: float, signal: str, sample: str = "start", t_end: float = T_END) -> Figure:
    """The three methods side by side (one row each) for one step and input, with the input on top."""
    runs = [discretization_run(step, m, signal, sample, t_end=t_end) for m in METHODS]
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [0.8, 1, 1, 1]})
    _draw_input(axes[0], runs[0])
    axes[0].set_title(f"input '{signal}', Δ = {step:g} s, samples at the {sample} of each step", fontsize=10, loc="left")
    for ax, run in zip(axes[1:], runs):
        _draw_output(ax, run)
    axes[-1].set_xlabel("time $t$ (s)")
    fig.tight_layout()
    return fig


def plot_convergence(steps: Any, panels: Sequence[tuple[str, Mapping[str, np.ndarray]]], exact_below: float = 1e-10) -> Figure:
    """Log-log error against Δ, one panel per ``(title, {method: errors})``, with slope-1 and slope-2 guides.

    A method whose errors all stay below ``exact_below`` is drawn at its (round-off) level and labelled
    exact instead of getting a fitted slope.
    """
    steps = np.asarray(steps, dtype=np.float64)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (title, errs) in zip(axes[0], panels):
        for m, e in errs.items():
            e = np.asarray(e, dtype=np.float64)
            if np.all(e < exact_below):
                label = f"{m}: exact (max {e.max():.0e})"
            else:
                label = f"{m}: slope {fit_slope(steps, e):.2f}"
            ax.loglog(steps, np.maximum(e, 1e-17), "o-", color=METHOD_COLORS.get(m, None), ms=4, label=label)
        top = max(float(np.max(e)) for e in errs.values())
        for order, ls in ((1, ":"), (2, "--")):
            guide = 0.3 * top * (steps / steps.max()) ** order
            ax.loglog(steps, guide, ls, color="0.5", lw=1, label=f"slope {order} (guide)")
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(FixedLocator(steps))
        ax.xaxis.set_major_formatter(FixedFormatter([f"1/{1 / s:.0f}" if s < 1 else f"{s:g}" for s in steps]))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("step Δ (s)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("max |y_k − y((k+1)Δ)|")
    fig.tight_layout()
    return fig


def plot_stability(marks: Sequence[complex] = (), extent: float = 5.0) -> Figure:
    r"""Where each method sends the left half-plane, in the z-plane, with the unit circle.

    Shaded: the image of the box :math:`-\text{extent} \le \operatorname{Re} w \le 0`,
    :math:`|\operatorname{Im} w| \le \text{extent}` of :math:`w = \Delta\lambda`; thick line: the image of
    the imaginary axis; crosses: the images of the points ``marks`` (values of Δλ), labelled by |z|.
    """
    re = -np.linspace(0, extent, 101)
    im = np.linspace(-extent, extent, 151)
    box = (re[:, None] + 1j * im[None, :]).reshape(-1)
    axis = 1j * np.linspace(-extent, extent, 801)
    marks = np.asarray(marks, dtype=np.complex128).reshape(-1)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    fig, axes = plt.subplots(1, 3, figsize=(12, 5.6))
    titles = {"euler": "Euler: z = 1 + Δλ", "bilinear": "bilinear: z = (1 + Δλ/2)/(1 − Δλ/2)", "zoh": "ZOH: z = exp(Δλ)"}
    for ax, m in zip(axes, METHODS):
        z_all = discrete_eigenvalue(np.concatenate([box, axis, marks]), m)  # one call: one compilation
        z_box, z_axis, z_marks = np.split(z_all, [box.size, box.size + axis.size])
        ax.scatter(z_box.real, z_box.imag, s=1, color=METHOD_COLORS[m], alpha=0.15, lw=0, rasterized=True)
        ax.plot([], [], "s", color=METHOD_COLORS[m], alpha=0.4, label="image of Re Δλ ≤ 0")
        ax.plot(z_axis.real, z_axis.imag, color=METHOD_COLORS[m], lw=2.5, label="image of the imaginary axis")
        ax.plot(circle.real, circle.imag, "k", lw=1, label="unit circle |z| = 1")
        for i, (w, z) in enumerate(zip(marks, z_marks)):
            w_text = f"{w.real:g}" if w.imag == 0 else f"{w:.3g}"
            ax.plot(z.real, z.imag, "x", ms=9, mew=2, color=f"C{4 + i}", label=f"Δλ = {w_text}: |z| = {abs(z):.3g}")
        if m == "euler":  # the image is the half-plane Re z < 1: show a window around the unit circle and beyond
            ax.set_xlim(0.5 - extent, 1.5)
            ax.set_ylim(-3.2, 3.2)
        else:  # the image lies in the closed unit disk
            ax.set_xlim(-1.35, 1.35)
            ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_title(titles[m], fontsize=10)
        ax.set_xlabel("Re z")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    axes[0].set_ylabel("Im z")
    fig.tight_layout()
    return fig


def plot_stiff(step: float, t_end: float = 10.0) -> Figure:
    """The stiff car (:func:`stiff_system`) under a step input, the three methods at one ``step``.

    Left: velocity, exact (line) and discrete (markers; clipped to the exact range). Right: the error
    :math:`|y_k - y((k+1)\\Delta)|` on a log axis.
    """
    runs = [discretization_run(step, m, "step", "start", system=stiff_system(), t_end=t_end) for m in METHODS]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    ax0.plot(runs[0].t_grid, runs[0].y_grid, "k", lw=1.2, label="continuous (simulate)")
    for run, mk in zip(runs, ("o", "s", "^")):
        ax0.plot(run.t_out, run.y_out, mk, ms=3, color=METHOD_COLORS[run.method], label=run.method, alpha=0.8)
        err = np.abs(run.y_out - run.y_true)
        ax1.semilogy(run.t_out, np.maximum(err, 1e-17), mk, ms=2.5, color=METHOD_COLORS[run.method],
                     label=f"{run.method}: max {run.error:.1e} m/s")
    hi = float(runs[0].y_grid.max())
    ax0.set_ylim(-0.3 * hi, 1.3 * hi)
    ax0.set_xlabel("time $t$ (s)")
    ax0.set_ylabel("velocity $v$ (m/s)")
    ax0.set_title(f"stiff car, 1 kN step at t = 1 s, Δ = {step:g} s", fontsize=10)
    ax0.legend(fontsize=8, loc="upper left")
    ax0.grid(alpha=0.3)
    ax1.set_xlabel("time $t$ (s)")
    ax1.set_ylabel("|error| (m/s)")
    ax1.set_title("error of each method (log scale)", fontsize=10)
    ax1.legend(fontsize=8, loc="center right")
    ax1.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def discretization_animation(
    steps: Sequence[float],
    methods: Sequence[str] = ("euler", "bilinear"),
    signal: str = "sine",
    sample: str = "midpoint",
    dpi: int = 72,
) -> FuncAnimation:
    """One frame per step in ``steps``: one panel per method, discrete markers over the exact line.

    The runs are computed up front; the figure is ``animation._fig`` (use ``to_jshtml()``).
    """
    steps = [float(s) for s in steps]
    if not steps:
        raise ValueError("steps: expected at least one step size")
    signal = _check.choice("signal", signal, SIGNALS)
    A, B, C = default_system()
    runs = []
    for s in steps:
        outs = [discrete_output(A, B, C, s, m, signal, sample, T_END) for m in methods]
        t_grid, y_grid, y_true = reference_output(A, B, C, signal, T_END, outs[0][2])  # same times for every method
        runs.append([
            DiscreteRun(s, m.lower(), signal, sample, t_grid, y_grid, t_in, u_in, t_out, y_out, y_true,
                        float(np.max(np.abs(y_out - y_true))))
            for m, (t_in, u_in, t_out, y_out) in zip(methods, outs)
        ])
    fig, axes = plt.subplots(1, len(methods), figsize=(4.6 * len(methods), 3.2), dpi=dpi, sharey=True, squeeze=False)

    def draw(i: int) -> list:
        for ax, run in zip(axes[0], runs[i]):
            ax.clear()
            _draw_output(ax, run, title=False)
            ax.set_title(f"{run.method}, Δ = {run.step:.3g} s: max error {run.error:.1e}", fontsize=9)
            ax.set_xlabel("time $t$ (s)")
        fig.tight_layout()
        return []

    return FuncAnimation(fig, draw, frames=len(steps), interval=350, blit=False)
