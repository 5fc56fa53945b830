"""Online function approximation with HiPPO (s4lite.memory), checked against exact projections."""

import numpy as np
import pytest
from numpy.polynomial import Polynomial
from numpy.polynomial.legendre import leggauss

from s4lite.discretize import bilinear
from s4lite.hippo import make_hippo
from s4lite.memory import (
    legendre_basis,
    legs_online,
    memory_profile,
    polynomial_response,
    project_legs,
    project_legt,
    reconstruct_legs,
    reconstruct_legt,
)

# A degree-5 polynomial: any N > 5 represents it exactly.
POLY = Polynomial([1.0, -2.0, 3.0, -4.0, 0.0, 1.0])
N = 8


def test_legendre_basis_orthonormal_gauss_legendre():
    """(1/2) Σ_i w_i φ_n(x_i) φ_m(x_i) = δ_nm; 30-point Gauss–Legendre is exact for degree ≤ 59."""
    x, w = leggauss(30)
    Phi = legendre_basis(30, x)  # (30 points, 30 polynomials): products have degree ≤ 58
    gram = 0.5 * Phi.T @ (w[:, None] * Phi)
    assert np.max(np.abs(gram - np.eye(30))) < 1e-13


def test_legendre_basis_closed_forms():
    """Against the textbook P_0 … P_3, scaled by √(2n+1)."""
    s = np.linspace(-1, 1, 11)
    expected = np.stack([np.ones_like(s), s, (3 * s**2 - 1) / 2, (5 * s**3 - 3 * s) / 2], axis=1)
    expected *= np.sqrt([1.0, 3.0, 5.0, 7.0])
    assert np.max(np.abs(legendre_basis(4, s) - expected)) < 1e-14
    assert legendre_basis(3, 0.5).shape == (1, 3)


def test_project_then_reconstruct_legs_is_exact_for_polynomials():
    t = 2.5
    c = project_legs(POLY, t, N)
    s = np.linspace(0, t, 101)
    assert np.max(np.abs(reconstruct_legs(c, t, s) - POLY(s))) < 1e-11


def test_legs_online_reproduces_constants_exactly():
    """A e_0 = −B, so c = u_0 e_0 is a fixed point of every step."""
    states = np.asarray(legs_online(np.full(50, 2.5), N, 0.1))
    expected = np.zeros((50, N))
    expected[:, 0] = 2.5
    assert np.max(np.abs(states - expected)) < 1e-13


def _online_error(L: int) -> float:
    dt = 1.0 / L
    t = dt * np.arange(1, L + 1)
    states = np.asarray(legs_online(POLY(t), N, dt))
    return float(np.max(np.abs(states[-1] - project_legs(POLY, 1.0, N))))


def test_legs_online_is_second_order():
    """The state at t = 1 approaches the exact projection, error × ~1/4 when dt halves."""
    errs = [_online_error(L) for L in (128, 256, 512)]
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert all(3.5 < r < 4.5 for r in ratios), (errs, ratios)
    assert errs[-1] < 2e-5, errs


def test_legs_online_reconstructs_polynomial_history():
    L = 2000
    dt = 1.0 / L
    t = dt * np.arange(1, L + 1)
    states = np.asarray(legs_online(POLY(t), N, dt))
    for k in (L // 2 - 1, L - 1):
        s = np.linspace(0, t[k], 200)
        assert np.max(np.abs(reconstruct_legs(states[k], t[k], s) - POLY(s))) < 1e-4


def test_polynomial_response_matches_lsim_for_linear_input():
    """scipy.signal.lsim (linear interpolation of u) is exact for a linear input; so must this be."""
    from scipy.signal import lsim

    rng = np.random.default_rng(1)
    A, B = make_hippo(6, "legs")
    x0 = rng.standard_normal(6)
    lin = Polynomial([0.7, -1.3])
    t = np.linspace(0.0, 1.5, 4)
    _, _, xs = lsim((A, B[:, None], np.eye(6), np.zeros((6, 1))), lin(t), t, X0=x0, interp=True)
    x_end = polynomial_response(A, B, lin.coef, 1.5, x0)
    assert np.max(np.abs(x_end - xs[-1])) / np.max(np.abs(x_end)) < 1e-12


@pytest.mark.parametrize("T", [0.5, 2.0])
def test_legt_is_a_sliding_window_of_length_one(T):
    """Started at the exact projection over [−1, 0], the LegT state stays the projection over [T−1, T]."""
    A, B = make_hippo(N, "legt")
    x = polynomial_response(A, B, POLY.coef, T, project_legt(POLY, 0.0, N))
    exact = project_legt(POLY, T, N)
    assert np.max(np.abs(x - exact)) / np.max(np.abs(exact)) < 1e-12
    r = np.linspace(0, 1, 101)
    assert np.max(np.abs(reconstruct_legt(x, r) - POLY(T - r))) < 1e-11
    # Without the (−1)^n the window comes out reversed in time: far off.
    unsigned = legendre_basis(N, 2 * r - 1) @ x
    assert np.max(np.abs(unsigned - POLY(T - r))) > 1.0


def test_memory_profile_single_state_closed_form():
    """N = 1: m_j = a^{2j} / Σ_i a^{2i} (noise 0)."""
    a, L = 0.9, 40
    m = memory_profile(np.array([[a]]), np.array([0.3]), L)
    expected = a ** (2 * np.arange(L)) / np.sum(a ** (2 * np.arange(L)))
    assert np.max(np.abs(m - expected)) < 1e-14


def test_memory_profile_budget_is_N():
    A, B = make_hippo(N, "legt")
    Ab, Bb = bilinear(A, B, 0.05)
    m = memory_profile(Ab, Bb, 400)
    assert abs(m.sum() - N) < 1e-8
    assert m.min() >= 0 and m.max() <= 1 + 1e-12
    m_noisy = memory_profile(Ab, Bb, 400, noise=1e-2)
    assert np.all(m_noisy <= m + 1e-12) and m_noisy.sum() < N - 0.01


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: legendre_basis(0, [0.0]), "N"),
        (lambda: legendre_basis(3, [1.5]), "s"),
        (lambda: legendre_basis(3, np.zeros((2, 2))), "s"),
        (lambda: reconstruct_legs(np.ones(3), 0.0, [0.0]), "t"),
        (lambda: reconstruct_legs(np.ones(3), 1.0, [1.2]), "s"),
        (lambda: reconstruct_legs(np.ones((3, 2)), 1.0, [0.5]), "c"),
        (lambda: reconstruct_legt(np.ones(3), [-0.1]), "s_back"),
        (lambda: legs_online(np.ones(10), 4, 0.0), "dt"),
        (lambda: legs_online(np.ones((10, 2)), 4, 0.1), "u"),
        (lambda: legs_online(np.ones(10), 0, 0.1), "N"),
        (lambda: project_legs("not a function", 1.0, 4), "f"),
        (lambda: project_legs(np.sin, -1.0, 4), "t"),
        (lambda: polynomial_response(np.eye(2), np.ones(3), [1.0], 1.0), "B"),
        (lambda: memory_profile(np.eye(2) * 0.5, np.ones(2), 10, noise=-1.0), "noise"),
        (lambda: memory_profile(np.eye(2) * 0.5, np.ones(2), 10), "noise"),  # rank-1 Gramian
    ],
)
def test_bad_input_raises(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_lagt_is_an_exponentially_weighted_laguerre_projection():
    """c_n(t) = ∫_0^∞ u(t−r) e^{−r/2} L_n(r) dr solves c' = Ac + Bu with make_hippo(N, "lagt").

    For a polynomial input the exact coefficients come from Gauss–Laguerre quadrature (weight e^{−r}:
    the integrand is p(t−r) e^{r/2} L_n(r) e^{−r}); the ODE is then solved exactly.
    """
    from scipy.special import eval_laguerre, roots_laguerre

    p = Polynomial([1.0, -2.0, 0.5, 0.3])
    r, w = roots_laguerre(60)

    def project(t):
        return np.array([np.sum(w * p(t - r) * np.exp(r / 2) * eval_laguerre(n, r)) for n in range(N)])

    A, B = make_hippo(N, "lagt")
    x = polynomial_response(A, B, p.coef, 1.5, project(0.0))
    assert np.max(np.abs(x - project(1.5))) / np.max(np.abs(project(1.5))) < 1e-12
