r"""Online function approximation with HiPPO: the state *is* a compressed history.

**LegS** (scaled Legendre, the measure S4 starts from) keeps, at every time t, the
coefficients of the orthogonal projection of the whole history
:math:`u(s),\ s \in [0, t]` onto the first N scaled Legendre polynomials, orthonormal
for the uniform measure :math:`\mathrm ds/t` on :math:`[0, t]`:

.. math::
    g_n^{(t)}(s) = \sqrt{2n+1}\, P_n\!\left(\tfrac{2s}{t} - 1\right), \qquad
    c_n(t) = \frac1t \int_0^t u(s)\, g_n^{(t)}(s)\, \mathrm ds, \qquad
    u(s) \approx \sum_{n<N} c_n(t)\, g_n^{(t)}(s).

Differentiating :math:`c(t)` gives the HiPPO-LegS ODE. With the stable sign convention
of :mod:`s4lite.hippo` (:math:`A` = ``make_hippo(N, "legs")[0]``, eigenvalues
:math:`-1, \dots, -N`) it reads

.. math::
    c'(t) = \frac1t \bigl(A\, c(t) + B\, u(t)\bigr)

(the HiPPO paper writes :math:`-\tfrac1t A c + \tfrac1t B u` with the positive matrix;
ours is already negated). It is linear but *time-varying*; S4 later drops the
:math:`1/t` and keeps the LTI system.

**LegT** (translated Legendre, ``make_hippo(N, "legt")``) is the same idea for a sliding
window of length :math:`\theta = 1`: with the lookback :math:`r = t - s \in [0, 1]`,

.. math::
    c_n(t) &= \int_{t-1}^{t} u(s)\,\sqrt{2n+1}\,P_n\bigl(2(s-t) + 1\bigr)\,\mathrm ds,\\
    u(t - r) &\approx \sum_{n<N} c_n(t)\,(-1)^n \sqrt{2n+1}\, P_n(2r - 1),

and :math:`c' = A c + B u` with exactly the ``legt`` matrices (derivation in chapter 4;
the :math:`(-1)^n` comes from :math:`P_n(-x) = (-1)^n P_n(x)`: the window's newest end
is :math:`x = +1`).

**LagT** (``make_hippo(N, "lagt")``; checked in ``tests/test_memory.py``):
:math:`c_n(t) = \int_0^\infty u(t-r)\, e^{-r/2} L_n(r)\,\mathrm dr` with the orthonormal
Laguerre functions.

===========================  ===========================================================
function                     what it computes
===========================  ===========================================================
:func:`legendre_basis`       :math:`\sqrt{2n+1}P_n(s)` on :math:`[-1, 1]`, ``(M, N)``
:func:`project_legs`         exact LegS coefficients of a function (quadrature)
:func:`project_legt`         exact LegT coefficients over the window :math:`[t-1, t]`
:func:`legs_online`          the time-varying LegS recurrence over samples
:func:`reconstruct_legs`     decode the history :math:`[0, t]` from a LegS state
:func:`reconstruct_legt`     decode the last window from a LegT state
:func:`polynomial_response`  exact state of :math:`x' = Ax + Bp` for a polynomial p
:func:`gramian`              state covariance under white-noise input
:func:`memory_profile`       how much of the input j steps back a readout recovers
===========================  ===========================================================

Legendre polynomials are evaluated with :func:`scipy.special.eval_legendre` (NumPy,
float64, converted with NumPy so that float64 survives even when JAX runs in float32):
the basis functions, projections and memory measures are *readouts* computed once, never
traced by JAX. Only :func:`legs_online` is a JAX function (a jitted ``lax.scan``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from numpy.polynomial.legendre import leggauss
from scipy.linalg import expm
from scipy.special import eval_legendre

from . import _check
from .hippo import make_hippo

Array = jax.Array

#: Window length of our LegT matrices (``make_hippo(N, "legt")``): θ = 1.
LEGT_THETA = 1.0


def _is_real_dtype(dtype: Any) -> bool:
    """Integer or floating point, not bool (and not complex)."""
    return dtype != bool and (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    )


def _in_interval(name: str, x: np.ndarray, lo: float, hi: float, what: str) -> None:
    """Values of ``x`` must lie in ``[lo, hi]`` (up to a relative 1e-12, round-off)."""
    tol = 1e-12 * max(1.0, abs(lo), abs(hi))
    if x.size and (
        not np.all(np.isfinite(x)) or x.min() < lo - tol or x.max() > hi + tol
    ):
        got = f"[{x.min():.6g}, {x.max():.6g}]"
        raise ValueError(f"{name}: expected values in {what}, got values in {got}")


def _numpy_vector(
    name: str, x: Any, n: int | None = None, what: str = "M"
) -> np.ndarray:
    """A real 1-D float64 NumPy vector (a scalar becomes length 1).

    Converted with NumPy, not ``jnp``, so that float64 survives even when JAX runs in
    float32.
    """
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # pragma: no cover - message path
        kind = type(x).__name__
        raise ValueError(f"{name}: expected an array of numbers, got {kind}") from err
    if not _is_real_dtype(arr.dtype):
        raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: expected a vector of shape ({what},), got shape {arr.shape}"
        )
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected length {what}={n}, got shape {arr.shape}")
    return arr.astype(np.float64)


def _numpy_square(name: str, A: Any) -> np.ndarray:
    """A real square float64 NumPy matrix ``(N, N)`` (converted with NumPy)."""
    arr = np.asarray(A)
    if not _is_real_dtype(arr.dtype):
        raise ValueError(f"{name}: expected a real matrix, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(
            f"{name}: expected a square matrix of shape (N, N), got shape {arr.shape}"
        )
    return arr.astype(np.float64)


def _real_number(name: str, value: Any, positive: bool = False) -> float:
    """A finite real Python float (and > 0 if ``positive``)."""
    arr = np.asarray(value)
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if arr.ndim != 0 or not real:
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    v = float(arr)
    if not np.isfinite(v) or (positive and v <= 0):
        bound = " > 0" if positive else ""
        raise ValueError(f"{name}: expected a finite real number{bound}, got {value!r}")
    return v


def _legendre_basis_args(N: Any, s: Any) -> tuple[int, np.ndarray]:
    N = _check.length("N", N)
    s = _numpy_vector("s", s)
    _in_interval("s", s, -1.0, 1.0, "[-1, 1]")
    return N, np.clip(s, -1.0, 1.0)  # round-off outside [-1, 1] is clipped


@_check.checked(_legendre_basis_args)
def legendre_basis(N: int, s: np.ndarray) -> np.ndarray:
    r"""Scaled Legendre polynomials :math:`\sqrt{2n+1}\,P_n(s)`, :math:`n < N`:
    ``(M, N)``.

    Orthonormal for the uniform probability measure on :math:`[-1, 1]`:
    :math:`\tfrac12\int_{-1}^{1} \sqrt{2n+1}P_n\,\sqrt{2m+1}P_m\,\mathrm ds
    = \delta_{nm}`.
    ``N``: number of polynomials (degrees 0 … N−1); ``s (M,)``: points in
    :math:`[-1, 1]` (a scalar is treated as ``M = 1``).
    """
    n = np.arange(N)
    return np.sqrt(2 * n + 1)[None, :] * eval_legendre(n[None, :], s[:, None])


def _coefficients(name: str, c: Any) -> np.ndarray:
    return _numpy_vector(name, c, what="N")


def _reconstruct_legs_args(c: Any, t: Any, s: Any) -> tuple:
    c = _coefficients("c", c)
    t = _real_number("t", t, positive=True)
    s = _numpy_vector("s", s)
    _in_interval("s", s, 0.0, t, f"[0, t] = [0, {t:g}]")
    return c, t, s


@_check.checked(_reconstruct_legs_args)
def reconstruct_legs(c: np.ndarray, t: float, s: np.ndarray) -> np.ndarray:
    r"""Decode a LegS state at time ``t``: the history on :math:`[0, t]`, ``(M,)``.

    .. math::
        u(s) \approx \sum_{n<N} c_n \sqrt{2n+1}\,P_n\!\left(\tfrac{2s}{t} - 1\right)

    ``c (N,)``: LegS coefficients at time ``t > 0`` (one row of :func:`legs_online`);
    ``s (M,)``: past times in :math:`[0, t]`.
    """
    return legendre_basis(c.shape[0], 2 * s / t - 1) @ c


def _reconstruct_legt_args(c: Any, s_back: Any) -> tuple[np.ndarray, np.ndarray]:
    c = _coefficients("c", c)
    r = _numpy_vector("s_back", s_back)
    _in_interval("s_back", r, 0.0, LEGT_THETA, "[0, 1] (the LegT window θ = 1)")
    return c, r


@_check.checked(_reconstruct_legt_args)
def reconstruct_legt(c: np.ndarray, s_back: np.ndarray) -> np.ndarray:
    r"""Decode a LegT state (window θ = 1) at lookbacks :math:`r = t - s`: ``(M,)``.

    .. math::
        u(t - r) \approx \sum_{n<N} c_n (-1)^n \sqrt{2n+1}\,P_n(2r - 1)

    ``c (N,)``: LegT coefficients at the current time t; ``s_back (M,)``: lookbacks
    :math:`r \in [0, 1]` (0 = now, 1 = the oldest remembered input).
    """
    sign = (-1.0) ** np.arange(c.shape[0])
    return legendre_basis(c.shape[0], 2 * s_back - 1) @ (sign * c)


def _project_args(
    f: Any, t: Any, N: Any, points: Any = 200, positive_t: bool = True
) -> tuple:
    f = _check.function("f", f, "a callable f(s) -> values")
    t = _real_number("t", t, positive=positive_t)
    return f, t, _check.length("N", N), _check.length("points", points)


def _project_legs_args(f: Any, t: Any, N: Any, points: Any = 200) -> tuple:
    return _project_args(f, t, N, points, positive_t=True)


def _project_legt_args(f: Any, t: Any, N: Any, points: Any = 200) -> tuple:
    return _project_args(f, t, N, points, positive_t=False)


@_check.checked(_project_legs_args)
def project_legs(
    f: Callable[[np.ndarray], Any], t: float, N: int, points: int = 200
) -> np.ndarray:
    r"""The exact LegS coefficients of a function at time ``t > 0``, shape ``(N,)``.

    .. math::
        c_n(t) = \frac1t \int_0^t f(s)\, g_n^{(t)}(s)\,\mathrm ds
        = \frac12 \int_{-1}^{1} f\!\left(\tfrac{t(x+1)}{2}\right)
          \sqrt{2n+1}\,P_n(x)\,\mathrm dx

    by ``points``-point Gauss–Legendre quadrature (exact when ``f`` is a polynomial of
    degree ≤ 2·points − N). ``f`` maps an array of times to an array of values.
    """
    x, w = leggauss(points)
    s = t * (x + 1) / 2
    fs = np.asarray(f(s), dtype=np.float64).reshape(s.shape)
    return 0.5 * legendre_basis(N, x).T @ (w * fs)


@_check.checked(_project_legt_args)
def project_legt(
    f: Callable[[np.ndarray], Any], t: float, N: int, points: int = 200
) -> np.ndarray:
    r"""Exact LegT coefficients of a function over the window :math:`[t-1, t]`:
    ``(N,)``.

    .. math::
        c_n(t) = \int_{t-1}^{t} f(s)\sqrt{2n+1}\,P_n(2(s-t)+1)\,\mathrm ds

    by Gauss–Legendre quadrature (``points`` nodes); ``t`` may be any real number.
    """
    x, w = leggauss(points)
    s = t + LEGT_THETA * (x - 1) / 2
    fs = np.asarray(f(s), dtype=np.float64).reshape(s.shape)
    return 0.5 * legendre_basis(N, x).T @ (w * fs)


def _legs_online_args(u: Any, N: Any, dt: Any) -> tuple[Array, int, Any]:
    u = _check.vector("u", u, what="L")
    N = _check.length("N", N)
    _check.positive("dt", dt)
    if jnp.iscomplexobj(u):
        raise ValueError(f"u: expected real samples, got dtype {u.dtype}")
    return u.astype(jnp.result_type(u, float)), N, dt


@_check.checked(_legs_online_args)
def legs_online(u: Array, N: int, dt: float) -> Array:
    r"""The time-varying HiPPO-LegS recurrence over samples ``u_k = u((k+1)·dt)``.

    The ODE :math:`c' = \tfrac1t(Ac + Bu)` is discretized with the bilinear (trapezoid)
    rule on each step :math:`[t_{k-1}, t_k]`, with the time-varying coefficient frozen
    at the midpoint :math:`t_{k-1/2}`, i.e. an ordinary bilinear step of size
    :math:`\delta_k = \Delta t / t_{k-1/2} = 1/(k+\tfrac12)`:

    .. math::
        \bigl(I - \tfrac{\delta_k}{2}A\bigr)\,c_k
        = \bigl(I + \tfrac{\delta_k}{2}A\bigr)\,c_{k-1}
          + \delta_k B\,\frac{u_{k-1} + u_k}{2},
        \qquad c_0 = u_0\, e_0 .

    Each step is A-stable (a bilinear map of a stable matrix) and the scheme is second
    order: the error at a fixed time shrinks like :math:`\Delta t^2`.
    :math:`c_0 = u_0 e_0` is the projection of the constant :math:`u_0` over
    :math:`[0, t_0]`; its :math:`O(\Delta t)` error is forgotten at rate :math:`t_0/t`.
    Constants are reproduced exactly (:math:`Ae_0 = -B`). The steps depend on k only:
    the recurrence is scale invariant, ``dt`` just says when the samples were taken. A
    is lower triangular, so each step is a triangular solve, O(N²).

    ``u (L,)`` real samples, ``N`` the state size, ``dt > 0``. Returns ``(L, N)``: row k
    holds :math:`c(t_k)`, the LegS coefficients of u on :math:`[0, t_k]`.
    """
    A, B = make_hippo(N, "legs")
    return _legs_recurrence(jnp.asarray(A, u.dtype), jnp.asarray(B, u.dtype), u)


@jax.jit
def _legs_recurrence(A: Array, B: Array, u: Array) -> Array:
    """The scan of :func:`legs_online` (jitted once per shape, so repeated calls are
    cheap)."""
    N = A.shape[0]
    eye = jnp.eye(N, dtype=A.dtype)
    c0 = jnp.zeros(N, A.dtype).at[0].set(u[0])
    k = jnp.arange(1, u.shape[0], dtype=A.dtype)
    delta = 1.0 / (k + 0.5)

    def step(c, inputs):
        d, u_prev, u_k = inputs
        rhs = c + (d / 2) * (A @ c) + d * B * (u_prev + u_k) / 2
        c = solve_triangular(eye - (d / 2) * A, rhs, lower=True)
        return c, c

    _, cs = jax.lax.scan(step, c0, (delta, u[:-1], u[1:]))
    return jnp.concatenate([c0[None, :], cs], axis=0)


def _polynomial_response_args(
    A: Any, B: Any, coef: Any, t: Any, x0: Any | None = None
) -> tuple:
    A = _numpy_square("A", A)
    n = A.shape[0]
    B = _numpy_vector("B", B, n, "N")
    a = _numpy_vector("coef", coef, what="d+1")
    t = _real_number("t", t)
    x0 = np.zeros(n) if x0 is None else _numpy_vector("x0", x0, n, "N")
    return A, B, a, t, x0


@_check.checked(_polynomial_response_args)
def polynomial_response(
    A: np.ndarray,
    B: np.ndarray,
    coef: np.ndarray,
    t: float,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    r"""Exact state :math:`x(t)` of :math:`x' = Ax + B\,p(s)`, p a polynomial: ``(N,)``.

    :math:`p(s) = \sum_{j=0}^{d} a_j s^j` (``coef`` = :math:`(a_0, \dots, a_d)`, NumPy's
    order) is itself the output of a chain of integrators:
    :math:`w = (p, p', \dots, p^{(d)})` obeys :math:`w' = Jw` with the shift matrix J.
    So :math:`z = (x, w)` solves the LTI system

    .. math::
        z' = \begin{pmatrix} A & B e_0^\top \\ 0 & J \end{pmatrix} z, \qquad
        z(t) = \exp(tM)\, z(0), \quad z(0) = (x_0,\ p(0), p'(0), \dots, p^{(d)}(0)),

    with no discretization error (one matrix exponential, float64). ``A (N, N)``,
    ``B (N,)``, ``x0 (N,)`` (zeros if omitted). Used to check the LegT convention: start
    from the exact window projection and the state must stay exact.
    """
    n, d = A.shape[0], coef.shape[0] - 1
    poly = np.polynomial.Polynomial(coef)
    w0 = np.array([poly.deriv(j)(0.0) if j else poly(0.0) for j in range(d + 1)])
    M = np.zeros((n + d + 1, n + d + 1))
    M[:n, :n] = A
    M[:n, n] = B
    M[n:, n:] = np.eye(d + 1, k=1)
    return (expm(t * M) @ np.concatenate([x0, w0]))[:n]


def _impulse_args(Ab: Any, Bb: Any, L: Any) -> tuple[np.ndarray, np.ndarray, int]:
    Ab = _numpy_square("Ab", Ab)
    Bb = _numpy_vector("Bb", Bb, Ab.shape[0], "N")
    return Ab, Bb, _check.length("L", L)


def _impulse_responses(Ab: np.ndarray, Bb: np.ndarray, L: int) -> np.ndarray:
    """Rows :math:`r_j = \\bar A^j \\bar B`, ``j < L``: shape ``(L, N)``."""
    R = np.empty((L, Ab.shape[0]))
    r = Bb
    for j in range(L):
        R[j] = r
        r = Ab @ r
    return R


@_check.checked(_impulse_args)
def gramian(Ab: np.ndarray, Bb: np.ndarray, L: int) -> np.ndarray:
    r"""The controllability Gramian over L steps, ``(N, N)``.

    .. math::
        \Sigma = \sum_{j<L} r_j r_j^\top, \qquad r_j = \bar A^j \bar B

    It is the covariance of the state after L steps of unit white-noise input. Its
    condition number says how unevenly the state's directions are used: a direction with
    a tiny eigenvalue carries almost no signal, and a readout needs huge weights to use
    it.
    """
    R = _impulse_responses(Ab, Bb, L)
    return R.T @ R


def _memory_profile_args(Ab: Any, Bb: Any, L: Any, noise: Any = 0.0) -> tuple:
    noise = _real_number("noise", noise)
    if noise < 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    Ab, Bb, L = _impulse_args(Ab, Bb, L)
    R = _impulse_responses(Ab, Bb, L)
    Sigma = R.T @ R
    w = np.linalg.eigh(Sigma)[0]
    if noise * np.trace(Sigma) / Sigma.shape[0] == 0.0 and w.min() <= 1e-14 * w.max():
        raise ValueError(
            "noise: the Gramian is numerically singular (condition > 1e14); "
            "pass noise > 0"
        )
    return Ab, Bb, L, noise


@_check.checked(_memory_profile_args)
def memory_profile(
    Ab: np.ndarray, Bb: np.ndarray, L: int, noise: float = 0.0
) -> np.ndarray:
    r"""How much of the input j steps back a linear readout recovers: ``(L,)`` in [0,
    1].

    Feed white noise (unit variance) into :math:`x_k = \bar A x_{k-1} + \bar B u_k`.
    Then :math:`x_k = \sum_j r_j u_{k-j}` with :math:`r_j = \bar A^j \bar B`, the state
    covariance is the Gramian :math:`\Sigma = \sum_{j<L} r_j r_j^\top`, and the best
    linear estimate of :math:`u_{k-j}` from :math:`x_k` explains the fraction

    .. math::
        m_j = r_j^\top (\Sigma + \varepsilon I)^{-1} r_j, \qquad
        \varepsilon = \texttt{noise}\cdot\operatorname{tr}\Sigma / N

    of its variance (the *memory function* of linear reservoir computing), in [0, 1].
    With ``noise = 0``, :math:`\sum_j m_j = \operatorname{tr}(\Sigma^{-1}\Sigma) = N`
    exactly: a linear state of size N holds N input samples' worth, and the profile says
    *which lags* it spends them on. A small ``noise`` (a readout that sees the state
    through noise of variance ε) discounts the state directions that carry almost no
    variance; then :math:`\sum_j m_j = \sum_i \sigma_i/(\sigma_i + \varepsilon)` over
    the eigenvalues :math:`\sigma_i` of Σ, the *effective* number of remembered samples.

    ``Ab (N, N)`` and ``Bb (N,)`` real, ``L`` lags (the Gramian is truncated there),
    ``noise ≥ 0`` the relative readout noise variance.
    """
    R = _impulse_responses(Ab, Bb, L)
    Sigma = R.T @ R
    eps = noise * np.trace(Sigma) / Sigma.shape[0]
    w, Q = np.linalg.eigh(Sigma)
    return ((R @ Q) ** 2) @ (1.0 / (w + eps))
