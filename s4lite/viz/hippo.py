r"""Figures and widget callbacks for chapter 4 (HiPPO).

* Test signals on :math:`(0, 1]` (:func:`make_signal`) and the online LegS memory of them:
  :func:`reconstruction_error` and the widget callback :func:`plot_reconstruction` (widget values
  N, t_frac, signal → Figure), the static fallbacks :func:`plot_reconstruction_grid` and
  :func:`animate_history`.
* :func:`plot_hippo_matrix` — a HiPPO matrix as an image with a diverging colormap.
* The memory comparison: :func:`random_stable_matrix` (a Gaussian A moved to a given range of
  eigenvalue real parts), :func:`memory_systems`, :func:`plot_impulse_norms`, :func:`plot_memory_profiles`.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import _check
from ..hippo import make_hippo
from ..memory import legs_online, reconstruct_legs

SIGNALS = ("multi-sine", "noisy", "square")
#: Samples per unit time of the test signals (t_k = (k+1)/SAMPLES, k < SAMPLES).
SAMPLES = 1000
#: Largest state size the widget accepts.
MAX_N = 256
MEASURE_TITLES = {
    "legs": "LegS (scaled Legendre)",
    "legt": "LegT (translated Legendre)",
    "lagt": "LagT (translated Laguerre)",
}


def _state_size(N: Any) -> int:
    N = _check.length("N", N)
    if N > MAX_N:
        raise ValueError(f"N: expected an integer in [1, {MAX_N}], got {N}")
    return N


def _fraction(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a number in (0, 1], got {value!r}") from err
    if not (0 < v <= 1):
        raise ValueError(f"{name}: expected a number in (0, 1], got {value!r}")
    return v


def make_signal(signal: str = "multi-sine", L: int = SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""A test signal sampled at :math:`t_k = (k+1)/L`, ``k < L``: returns ``(t (L,), u (L,))``.

    * ``"multi-sine"``: :math:`\sin 2\pi\, 2t + \tfrac12\cos 2\pi\, 5t + 0.3 \sin 2\pi\, 11t`.
    * ``"noisy"``: the same plus white Gaussian noise of standard deviation 0.3 (fixed ``seed``).
    * ``"square"``: a square wave of period 0.4 (jumps: the hardest case for polynomials).
    """
    signal = _check.choice("signal", signal, SIGNALS)
    L = _check.length("L", L)
    t = np.arange(1, L + 1) / L
    u = np.sin(2 * np.pi * 2 * t) + 0.5 * np.cos(2 * np.pi * 5 * t) + 0.3 * np.sin(2 * np.pi * 11 * t)
    if signal == "noisy":
        u = u + 0.3 * np.random.default_rng(seed).standard_normal(L)
    elif signal == "square":
        u = np.where((t % 0.4) < 0.2, 1.0, -1.0)
    return t, u


def _online(N: int, signal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, u = make_signal(signal)
    states = np.asarray(legs_online(u, N, t[0]))
    return t, u, states


def _index(t_frac: float, L: int) -> int:
    """The sample whose time is closest to t_frac (at least the first)."""
    return max(int(round(t_frac * L)) - 1, 0)


def reconstruction_error(N: int, t_frac: float, signal: str = "multi-sine") -> float:
    r"""RMS error of the LegS reconstruction of the whole history :math:`u(s), s \le t`, at time t.

    The signal (:func:`make_signal`) is fed through :func:`~s4lite.memory.legs_online` with N
    coefficients; at :math:`t \approx` ``t_frac`` the state is decoded with
    :func:`~s4lite.memory.reconstruct_legs` at every past sample and compared with the samples.
    """
    N = _state_size(N)
    t_frac = _fraction("t_frac", t_frac)
    t, u, states = _online(N, signal)
    k = _index(t_frac, t.shape[0])
    rec = reconstruct_legs(states[k], t[k], t[: k + 1])
    return float(np.sqrt(np.mean((rec - u[: k + 1]) ** 2)))


def _draw_reconstruction(ax: Any, t: np.ndarray, u: np.ndarray, states: np.ndarray, k: int, N: int) -> float:
    rec = reconstruct_legs(states[k], t[k], t[: k + 1])
    err = float(np.sqrt(np.mean((rec - u[: k + 1]) ** 2)))
    ax.plot(t[: k + 1], u[: k + 1], color="0.6", lw=1, label="signal so far")
    ax.plot(t[: k + 1], rec, color="C0", lw=1.8, label=f"decoded from the state (N = {N})")
    ax.axvline(t[k], color="k", lw=0.8, ls=":")
    ax.set_xlim(0, t[-1])
    ax.set_xlabel("time $s$")
    ax.set_ylabel("$u(s)$")
    return err


def plot_reconstruction(N: int, t_frac: float, signal: str = "multi-sine") -> Figure:
    """Widget callback: the history decoded from the LegS state at time t (left), and the state (right).

    Args:
        N: state size, 1 … MAX_N.   t_frac: current time t in (0, 1].   signal: one of :data:`SIGNALS`.
    """
    N = _state_size(N)
    t_frac = _fraction("t_frac", t_frac)
    signal = _check.choice("signal", signal, SIGNALS)
    t, u, states = _online(N, signal)
    k = _index(t_frac, t.shape[0])
    fig, (ax, ax_c) = plt.subplots(1, 2, figsize=(9.5, 3.4), gridspec_kw={"width_ratios": [2.2, 1]})
    err = _draw_reconstruction(ax, t, u, states, k, N)
    ax.set_title(f"LegS memory of '{signal}' at t = {t[k]:.2f}: rms error {err:.3f}")
    ax.legend(loc="lower left", fontsize=8)
    n = np.arange(N)
    ax_c.semilogy(n, np.abs(states[k]) + 1e-300, "o", ms=3)
    ax_c.set_xlabel("coefficient index $n$")
    ax_c.set_ylabel(r"$|c_n(t)|$")
    ax_c.set_title("the state")
    ax_c.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def plot_reconstruction_grid(Ns: Sequence[int], t_frac: float = 1.0, signal: str = "multi-sine") -> Figure:
    """Static fallback of the widget: one panel per state size in ``Ns`` at the same time t."""
    Ns = [_state_size(N) for N in Ns]
    if not Ns:
        raise ValueError("Ns: expected at least one state size, got none")
    t_frac = _fraction("t_frac", t_frac)
    signal = _check.choice("signal", signal, SIGNALS)
    fig, axes = plt.subplots(len(Ns), 1, figsize=(8, 1.7 * len(Ns) + 0.4), sharex=True, squeeze=False)
    for ax, N in zip(axes[:, 0], Ns):
        t, u, states = _online(N, signal)
        k = _index(t_frac, t.shape[0])
        err = _draw_reconstruction(ax, t, u, states, k, N)
        ax.set_title(f"N = {N}: rms error {err:.3f}", fontsize=9)
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")
    axes[0, 0].legend(loc="lower left", fontsize=7, ncol=2)
    fig.suptitle(f"LegS reconstruction of '{signal}' at t = {t[k]:.2f}")
    fig.tight_layout()
    return fig


def animate_history(N: int = 32, signal: str = "multi-sine", frames: int = 30, dpi: int = 80) -> FuncAnimation:
    """Animation over time t: the signal so far and the history decoded from the LegS state at t.

    ``frames`` (≤ 40) evenly spaced times in (0, 1]; call ``.to_jshtml()`` on the result.
    """
    N = _state_size(N)
    signal = _check.choice("signal", signal, SIGNALS)
    frames = _check.length("frames", frames)
    if frames > 40:
        raise ValueError(f"frames: expected at most 40 frames (keeps the page light), got {frames}")
    t, u, states = _online(N, signal)
    ks = [_index((i + 1) / frames, t.shape[0]) for i in range(frames)]
    fig, ax = plt.subplots(figsize=(7, 3), dpi=dpi)
    lo, hi = float(u.min()), float(u.max())
    pad = 0.15 * (hi - lo)

    def draw(i: int) -> list:
        ax.clear()
        err = _draw_reconstruction(ax, t, u, states, ks[i], N)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"LegS, N = {N}, t = {t[ks[i]]:.2f}: rms error {err:.3f}", fontsize=10)
        ax.legend(loc="lower left", fontsize=7)
        return []

    fig.tight_layout()
    anim = FuncAnimation(fig, draw, frames=frames, interval=250)
    plt.close(fig)
    return anim


def plot_hippo_matrix(N: int, measure: str = "legs", ax: Any = None) -> Figure:
    """``make_hippo(N, measure)``'s A as an image, diverging colormap centred on 0, with a colorbar."""
    N = _state_size(N)
    measure = _check.choice("measure", measure, tuple(MEASURE_TITLES))
    A, _ = make_hippo(N, measure)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
    else:
        fig = ax.figure
    vmax = float(np.abs(A).max())
    im = ax.imshow(A, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="$A_{nk}$", shrink=0.85)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("column $k$")
    ax.set_ylabel("row $n$")
    ax.set_title(f"{MEASURE_TITLES[measure]}, N = {N}", fontsize=10)
    return fig


def random_stable_matrix(N: int, re_min: float, re_max: float, seed: int = 0) -> np.ndarray:
    r"""A Gaussian matrix moved and scaled so that its eigenvalues' real parts span exactly [re_min, re_max].

    :math:`A = aG + bI` with :math:`G_{ij} \sim \mathcal N(0, 1/N)`; a > 0 and b are chosen so that
    :math:`\min\operatorname{Re}\lambda(A) = ` ``re_min`` and :math:`\max\operatorname{Re}\lambda(A) =` ``re_max``.
    """
    N = _check.length("N", N)
    if N < 2:
        raise ValueError(f"N: expected an integer >= 2 (a range of eigenvalues needs two), got {N}")
    re_min, re_max = float(re_min), float(re_max)
    if not (re_min < re_max < 0):
        raise ValueError(f"re_min, re_max: expected re_min < re_max < 0, got {re_min}, {re_max}")
    G = np.random.default_rng(seed).standard_normal((N, N)) / np.sqrt(N)
    re = np.linalg.eigvals(G).real
    a = (re_max - re_min) / (re.max() - re.min())
    b = re_max - a * re.max()
    return a * G + b * np.eye(N)


def memory_systems(N: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r"""The four continuous systems ``name -> (A, B)`` of the memory comparison.

    LegS, LegT and LagT from :func:`~s4lite.hippo.make_hippo`, and a random A
    (:func:`random_stable_matrix`) whose eigenvalues' real parts span LegS's :math:`[-N, -1]`, with a
    random B of the same norm as LegS's B.
    """
    N = _state_size(N)
    systems = {name: make_hippo(N, m) for name, m in (("LegS", "legs"), ("LegT", "legt"), ("LagT", "lagt"))}
    B_legs = systems["LegS"][1]
    rng = np.random.default_rng(seed + 1)
    B = rng.standard_normal(N)
    systems["random"] = (random_stable_matrix(N, -float(N), -1.0, seed), B * np.linalg.norm(B_legs) / np.linalg.norm(B))
    return systems


def plot_impulse_norms(times: np.ndarray, norms: dict[str, np.ndarray], t_max: float | None = None) -> Figure:
    r"""Log-y plot of :math:`\|x_k\| / \|x_0\|` after a unit impulse at time 0, one line per system.

    ``t_max`` limits the plotted times (all of ``times`` if omitted).
    """
    times = np.asarray(times)
    keep = np.ones(times.shape, bool) if t_max is None else times <= t_max
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, v in norms.items():
        v = np.asarray(v)
        ax.semilogy(times[keep], v[keep] / v[0], label=name)
    ax.set_xlabel("time since the impulse $t = k\\Delta$")
    ax.set_ylabel(r"$\|x_k\| \,/\, \|x_0\|$")
    ax.set_title("How long an impulse stays in the state")
    ax.set_ylim(1e-12, 10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_memory_profiles(times: np.ndarray, profiles: dict[str, np.ndarray], N: int) -> Figure:
    r"""Cumulative memory :math:`\sum_{j \le \tau/\Delta} m_j` against the lag τ (log x), one line per system."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, m in profiles.items():
        ax.semilogx(times[1:], np.cumsum(np.asarray(m))[1:], label=f"{name} (total {np.sum(m):.1f})")
    ax.axhline(N, color="k", lw=0.8, ls=":", label=f"N = {N}")
    ax.set_xlabel(r"lag $\tau$ (time units into the past)")
    ax.set_ylabel("input samples recoverable\nfrom the state, lags $\\leq \\tau$")
    ax.set_title("Where each state spends its memory")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
