"""Property tests (Hypothesis) over small random stable systems.

Shapes come from a fixed small set (N ∈ {2, 4, 6}, L ∈ {16, 64}) so that JIT compilation happens a
handful of times; the numbers inside (matrices, steps, inputs) vary freely. Tolerances are relative
to the natural scale of each quantity (e.g. Σ|K̄|·max|u| for a convolution).

The library functions are called through ``jax.jit`` here: called eagerly, a ``lax.scan`` whose body
closes over its arrays is re-traced and re-compiled on every call, which would make a few hundred
examples take minutes. Jitted, each shape compiles once. (Argument checks are exercised elsewhere.)
"""

import jax
import numpy as np
from conftest import random_dplr, random_stable_system
from hypothesis import given, settings
from hypothesis import strategies as st

from s4lite import convolution, kernel, recurrence
from s4lite import discretize as disc
from s4lite.hippo import dplr_to_dense

scan_ssm = jax.jit(recurrence.scan_ssm)
kernel_naive = jax.jit(convolution.kernel_naive, static_argnums=3)
causal_conv = jax.jit(convolution.causal_conv)
discretize = jax.jit(disc.discretize, static_argnums=3)
bilinear = jax.jit(disc.bilinear)
kernel_dplr = jax.jit(kernel.kernel_dplr, static_argnums=6)

SETTINGS = settings()  # the profile loaded in conftest.py (20 examples; 200 when thorough)
TOL = 1e-11


@st.composite
def systems(draw, methods=disc.METHODS):
    """(Ab, Bb, C, u, method, step) for a random stable A, discretized; u random of length L."""
    N = draw(st.sampled_from([2, 4, 6]))
    L = draw(st.sampled_from([16, 64]))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["shift", "eig"]))
    method = draw(st.sampled_from(methods))
    # Euler is only stable for small steps; the other two for any step > 0
    step = draw(st.floats(1e-3, 0.1) if method == "euler" else st.floats(1e-3, 5.0))
    rng = np.random.default_rng(seed)
    A, B, C = make_stable(rng, N, kind)
    Ab, Bb = (np.asarray(x) for x in discretize(A, B, step, method))
    u = rng.standard_normal(L)
    return Ab, Bb, C, u, A, method, step


def make_stable(rng, N, kind):
    """Stable A: a Gaussian matrix shifted so max Re λ = −0.1, or Q diag(λ) Q⁻¹ with λ ∈ [−3, −0.1]."""
    if kind == "shift":
        return random_stable_system(rng, N, margin=0.1)
    lam = -rng.uniform(0.1, 3.0, N)
    Q = np.eye(N) + 0.5 * rng.standard_normal((N, N)) / np.sqrt(N)
    return Q @ np.diag(lam) @ np.linalg.inv(Q), rng.standard_normal(N), rng.standard_normal(N)


def conv_scale(K, u):
    return np.sum(np.abs(K)) * np.max(np.abs(u)) + 1e-300


@SETTINGS
@given(systems())
def test_convolution_equals_recurrence(sys):
    Ab, Bb, C, u, *_ = sys
    K = np.asarray(kernel_naive(Ab, Bb, C, len(u)))
    y_conv = np.asarray(causal_conv(u, K))
    y_scan = np.asarray(scan_ssm(Ab, Bb, C, u)[0])
    assert np.max(np.abs(y_conv - y_scan)) <= TOL * conv_scale(K, u)


@SETTINGS
@given(systems(), st.data())
def test_causality(sys, data):
    """Changing u after index k leaves y_0 … y_k unchanged (scan: bit for bit; FFT conv: to rounding)."""
    Ab, Bb, C, u, *_ = sys
    L = len(u)
    k = data.draw(st.integers(0, L - 2))
    u2 = u.copy()
    u2[k + 1 :] = np.random.default_rng(k).standard_normal(L - k - 1) * 10
    y1, y2 = (np.asarray(scan_ssm(Ab, Bb, C, v)[0]) for v in (u, u2))
    np.testing.assert_array_equal(y1[: k + 1], y2[: k + 1])
    assert not np.array_equal(y1[k + 1 :], y2[k + 1 :]) or np.allclose(Bb, 0)
    K = np.asarray(kernel_naive(Ab, Bb, C, L))
    c1, c2 = (np.asarray(causal_conv(v, K)) for v in (u, u2))
    assert np.max(np.abs(c1[: k + 1] - c2[: k + 1])) <= TOL * max(conv_scale(K, u), conv_scale(K, u2))


@SETTINGS
@given(systems(), st.floats(-3.0, 3.0), st.integers(0, 2**32 - 1))
def test_linearity_in_C_and_u(sys, a, seed):
    Ab, Bb, C, u, *_ = sys
    rng = np.random.default_rng(seed)
    C2, u2 = rng.standard_normal(C.shape), rng.standard_normal(u.shape)
    y = lambda C_, u_: np.asarray(scan_ssm(Ab, Bb, C_, u_)[0])  # noqa: E731
    scale = np.max(np.abs(np.concatenate([y(C, u), y(C2, u), y(C, u2)]))) * (1 + abs(a)) + 1e-300
    assert np.max(np.abs(y(C + a * C2, u) - (y(C, u) + a * y(C2, u)))) <= TOL * scale
    assert np.max(np.abs(y(C, u + a * u2) - (y(C, u) + a * y(C, u2)))) <= TOL * scale
    K = np.asarray(kernel_naive(Ab, Bb, C + a * C2, len(u)))
    K_sum = np.asarray(kernel_naive(Ab, Bb, C, len(u))) + a * np.asarray(kernel_naive(Ab, Bb, C2, len(u)))
    assert np.max(np.abs(K - K_sum)) <= TOL * (np.max(np.abs(K_sum)) + np.max(np.abs(K)) + 1e-300)


@SETTINGS
@given(systems())
def test_impulse_response_is_kernel(sys):
    Ab, Bb, C, u, *_ = sys
    e0 = np.zeros_like(u)
    e0[0] = 1.0
    K = np.asarray(kernel_naive(Ab, Bb, C, len(u)))
    y = np.asarray(scan_ssm(Ab, Bb, C, e0)[0])
    assert np.max(np.abs(y - K)) <= TOL * np.max(np.abs(K))


@SETTINGS
@given(systems(methods=("bilinear", "zoh")))
def test_stable_maps_to_inside_unit_circle(sys):
    """Re λ(A) < 0 ⇒ |λ(Ā)| < 1 for bilinear and ZOH (any Δ > 0); ZOH even gives |λ(Ā)| = e^{Δ Re λ(A)}."""
    Ab, _, _, _, A, method, step = sys
    mu = np.linalg.eigvals(Ab)
    assert np.max(np.abs(mu)) < 1.0
    if method == "zoh":
        expect = np.sort(np.exp(step * np.linalg.eigvals(A).real))
        np.testing.assert_allclose(np.sort(np.abs(mu)), expect, rtol=1e-6)
    else:
        lam = np.linalg.eigvals(A)
        expect = np.sort(np.abs((1 + step / 2 * lam) / (1 - step / 2 * lam)))
        np.testing.assert_allclose(np.sort(np.abs(mu)), expect, rtol=1e-6)


@settings(max_examples=10)
@given(st.sampled_from([2, 6]), st.sampled_from([1, 2]), st.floats(1e-3, 1.0), st.integers(0, 2**32 - 1))
def test_dplr_kernel_equals_naive(N, r, step, seed):
    """Theorem 3 on random DPLR systems (Q ≠ P): kernel_dplr == Re kernel_naive(bilinear(dense A))."""
    L = 64
    Lambda, P, Q, B, C = random_dplr(np.random.default_rng(seed), N, r=r)
    K = np.asarray(kernel_dplr(Lambda, P, Q, B, C, step, L))
    Ab, Bb = bilinear(dplr_to_dense(Lambda, P, Q), B, step)
    K_ref = np.real(np.asarray(kernel_naive(Ab, Bb, C, L)))
    assert np.max(np.abs(K - K_ref)) <= 1e-10 * np.max(np.abs(K_ref))
