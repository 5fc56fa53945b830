"""Theorem 3: the S4 kernel via generating function + Woodbury + Cauchy, against the naive kernel.

Also: the paper's identity step, jit / vmap / grad, and dtype propagation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import hippo
from s4lite.convolution import kernel_naive
from s4lite.discretize import bilinear
from s4lite.kernel import (
    kernel_dplr,
    kernel_dplr_ctilde,
    kernel_generating_function,
    kernel_spectrum_dplr,
    roots_of_unity,
    woodbury_resolvent,
)

# kernel_dplr vs the naive kernel at N = 64, L = 4096 (float64; the test uses L = 1024). Measured: ≤ 7e-13 over the three
# measures and Δ ∈ {1e-3, 1e-2, 1e-1} (LegS ~1e-14, LegT ~2e-14, LagT up to 7e-13).
KERNEL_TOL = 1e-10
N_BIG, L_BIG, STEP = 64, 1024, 1e-2
L_SMALL = 256  # every other test uses this length (fewer distinct shapes → fewer JIT compilations)


def _bilinear_np(A, B, step):
    return (np.asarray(x) for x in bilinear(A, B, step))


def _ctilde(Ab, C, L):
    return C @ (np.eye(Ab.shape[0]) - np.linalg.matrix_power(Ab, L))


@pytest.fixture(scope="module")
def legs64():
    """(Lambda, P, B, A_dense, C) for LegS at N = 64 with a random complex C."""
    Lambda, P, B, _ = hippo.make_dplr(N_BIG, "legs")
    rng = np.random.default_rng(7)
    C = rng.standard_normal(N_BIG) + 1j * rng.standard_normal(N_BIG)
    return Lambda, P, B, hippo.dplr_to_dense(Lambda, P), C


@pytest.mark.parametrize("measure", hippo.MEASURES)
def test_kernel_dplr_matches_naive_hippo(measure, relerr):
    Lambda, P, B, _ = hippo.make_dplr(N_BIG, measure)
    rng = np.random.default_rng(1)
    C = rng.standard_normal(N_BIG) + 1j * rng.standard_normal(N_BIG)
    K = kernel_dplr(Lambda, P, P, B, C, STEP, L_BIG)
    Ab, Bb = _bilinear_np(hippo.dplr_to_dense(Lambda, P), B, STEP)
    K_ref = np.real(kernel_naive(Ab, Bb, C, L_BIG))
    assert K.shape == (L_BIG,) and K.dtype == jnp.float64
    assert relerr(K, K_ref) < KERNEL_TOL


def test_kernel_dplr_equals_kernel_of_original_real_hippo(legs64, relerr):
    """Change of basis: the real LegS SSM (A, B, c) has the kernel of the DPLR SSM (…, V*B, cV)."""
    Lambda, P, B, _, _ = legs64
    *_, V = hippo.make_dplr(N_BIG, "legs")
    A, B_real = hippo.make_hippo(N_BIG, "legs")
    c = np.random.default_rng(3).standard_normal(N_BIG)
    K = kernel_dplr(Lambda, P, P, B, c @ V, STEP, L_BIG)
    Ab, Bb = _bilinear_np(A, B_real, STEP)
    assert relerr(K, kernel_naive(Ab, Bb, c, L_BIG)) < 1e-9  # real-basis naive kernel is itself less accurate


@pytest.mark.parametrize("r", [1, 2])
def test_kernel_dplr_random_dplr_with_Q(rng, dplr_system, relerr, r):
    """Q ≠ P, rank 1 and 2, a random step."""
    Lambda, P, Q, B, C = dplr_system(rng, N_BIG, r=r)
    L, step = L_SMALL, 0.37
    K = kernel_dplr(Lambda, P, Q, B, C, step, L)
    Ab, Bb = _bilinear_np(hippo.dplr_to_dense(Lambda, P, Q), B, step)
    assert relerr(K, np.real(kernel_naive(Ab, Bb, C, L))) < KERNEL_TOL


def test_kernel_dplr_ctilde_consistent(legs64, relerr):
    Lambda, P, B, A, C = legs64
    L = L_SMALL
    Ab, _ = _bilinear_np(A, B, STEP)
    Ct = _ctilde(Ab, C, L)
    K1 = kernel_dplr_ctilde(Lambda, P, P, B, Ct, STEP, L)
    K2 = kernel_dplr(Lambda, P, P, B, C, STEP, L)
    assert relerr(K1, K2) < 1e-12


def test_roots_of_unity_fft_convention(rng):
    L = 12
    w = np.asarray(roots_of_unity(L))
    np.testing.assert_allclose(w, np.exp(-2j * np.pi * np.arange(L) / L), rtol=0, atol=1e-15)
    x = rng.standard_normal(L)
    np.testing.assert_allclose(np.array([np.sum(x * wk ** np.arange(L)) for wk in w]), np.fft.fft(x), atol=1e-13)


def test_truncated_generating_function_at_roots_of_unity(rng, stable_system, relerr):
    """Σ_{j<L} K̄_j ω^j = C̃ (I − Āω)⁻¹ B̄ exactly when ω^L = 1."""
    A, B, C = stable_system(rng, 5)
    L = 64
    Ab, Bb = _bilinear_np(A, B, 0.2)
    K = np.asarray(kernel_naive(Ab, Bb, C, L))
    Ct = _ctilde(Ab, C, L)
    for w in np.asarray(roots_of_unity(L))[[0, 1, 5, 16]]:
        lhs = np.sum(K * w ** np.arange(L))
        rhs = Ct @ np.linalg.solve(np.eye(5) - Ab * w, Bb)
        assert abs(lhs - rhs) < 1e-12 * np.abs(K).max()


@pytest.mark.parametrize("complex_", [False, True])
def test_kernel_generating_function_matches_naive(rng, stable_system, relerr, complex_):
    A, B, C = stable_system(rng, 5, complex_=complex_)
    L = 64
    Ab, Bb = _bilinear_np(A, B, 0.2)
    Kg = kernel_generating_function(Ab, Bb, C, L)
    assert np.iscomplexobj(np.asarray(Kg))
    assert relerr(Kg, kernel_naive(Ab, Bb, C, L)) < 1e-12


@pytest.mark.parametrize("r", [1, 2])
def test_woodbury_resolvent_equals_inverse(rng, dplr_system, relerr, r):
    Lambda, P, Q, _, _ = dplr_system(rng, 7, r=r)
    A = hippo.dplr_to_dense(Lambda, P, Q)
    for z in (0.3 + 0.0j, 2.0 - 1.5j, 40.0 + 7.0j):
        R = woodbury_resolvent(Lambda, P, Q, z)
        assert R.shape == (7, 7)
        assert relerr(R, np.linalg.inv(z * np.eye(7) - A)) < 1e-12
    if r == 1:  # rank-1 factors may be given as plain vectors
        assert relerr(woodbury_resolvent(Lambda, P[0], Q[0], 1.0), np.linalg.inv(np.eye(7) - A)) < 1e-12


@pytest.mark.parametrize("measure", ["legs", "legt"])
def test_bilinear_identity_and_spectrum(measure, relerr):
    """The paper's step: C̃(I − Āω)⁻¹B̄ = 2/(1+ω) · C̃ (g(ω) − A)⁻¹ B, g(ω) = (2/Δ)(1−ω)/(1+ω).

    Checked densely at points on and off the unit circle, and against kernel_spectrum_dplr.
    """
    N, step = N_BIG, 0.05
    Lambda, P, B, _ = hippo.make_dplr(N, measure)
    A = hippo.dplr_to_dense(Lambda, P)
    rng = np.random.default_rng(5)
    Ct = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    Ab, Bb = _bilinear_np(A, B, step)
    omegas = np.array([1.0, np.exp(-0.7j), np.exp(-2.9j), 0.5 + 0.2j, -0.3j])
    lhs = np.array([Ct @ np.linalg.solve(np.eye(N) - Ab * w, Bb) for w in omegas])
    g = 2.0 / step * (1 - omegas) / (1 + omegas)
    rhs = np.array([2.0 / (1 + w) * (Ct @ np.linalg.solve(gw * np.eye(N) - A, B)) for w, gw in zip(omegas, g)])
    assert relerr(rhs, lhs) < 1e-12
    P2 = np.atleast_2d(P)
    spec = kernel_spectrum_dplr(jnp.asarray(Lambda), jnp.asarray(P2), jnp.asarray(P2), jnp.asarray(B),
                                jnp.asarray(Ct), step, jnp.asarray(omegas))
    assert relerr(spec, lhs) < 1e-12


# ----------------------------------------------------------------------------- jit / vmap / grad

def test_jit_matches_eager(legs64, relerr):
    Lambda, P, B, _, C = legs64
    L = L_SMALL
    Ct = C  # any C̃ will do
    eager = kernel_dplr_ctilde(Lambda, P, P, B, Ct, STEP, L)
    jitted = jax.jit(kernel_dplr_ctilde, static_argnums=6)(Lambda, P, P, B, Ct, STEP, L)
    assert relerr(jitted, eager) < 1e-13
    eager = kernel_dplr(Lambda, P, P, B, C, STEP, L)
    jitted = jax.jit(kernel_dplr, static_argnums=6)(Lambda, P, P, B, C, STEP, L)
    assert relerr(jitted, eager) < 1e-12


def test_vmap_over_steps(legs64, relerr):
    Lambda, P, B, _, C = legs64
    L = L_SMALL
    steps = jnp.array([1e-3, 1e-2, 1e-1])
    batched = jax.jit(jax.vmap(lambda s: kernel_dplr(Lambda, P, P, B, C, s, L)))(steps)
    assert batched.shape == (3, L)
    for i, s in enumerate(steps):
        assert relerr(batched[i], kernel_dplr(Lambda, P, P, B, C, float(s), L)) < 1e-12


def test_vmap_over_independent_ssms(rng, dplr_system, relerr):
    """H independent SSMs in one call, as an S4 layer does."""
    H, N, L = 3, N_BIG, L_SMALL
    systems = [dplr_system(rng, N) for _ in range(H)]
    Lam, P, Q, B, C = (np.stack([s[i] for s in systems]) for i in range(5))
    steps = np.array([0.01, 0.05, 0.2])
    batched = jax.jit(jax.vmap(lambda *a: kernel_dplr_ctilde(*a, L)))(Lam, P, Q, B, C, steps)
    for h in range(H):
        assert relerr(batched[h], kernel_dplr_ctilde(Lam[h], P[h], Q[h], B[h], C[h], steps[h], L)) < 1e-12


def test_grad_matches_central_differences(legs64):
    """jax.grad of Σ_j w_j K̄_j w.r.t. Δ, Re C̃, Im C̃ and Re Λ is finite and equals central differences.

    Two weightings: w = 1 (the plain sum of the kernel) and a random w (so every frequency matters).
    C̃ and Λ are split into real and imaginary parts so that every derivative is an ordinary real one.
    """
    Lambda, P, B, _, _ = legs64
    N, L = N_BIG, L_SMALL
    rng = np.random.default_rng(11)
    ct_re, ct_im = rng.standard_normal(N), rng.standard_normal(N)

    @jax.jit
    def loss(step, ct_re, ct_im, lam_re, weights):
        K = kernel_dplr_ctilde(lam_re + 1j * Lambda.imag, P, P, B, ct_re + 1j * ct_im, step, L)
        return jnp.sum(weights * K)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))
    args = (np.float64(STEP), ct_re, ct_im, Lambda.real.copy())
    for weights in (np.ones(L), rng.standard_normal(L)):
        grads = grad(*args, weights)
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g)))

        def fd(i, idx, h):
            plus = [np.array(a) for a in args]
            minus = [np.array(a) for a in args]
            plus[i][idx] += h
            minus[i][idx] -= h
            return (float(loss(*plus, weights)) - float(loss(*minus, weights))) / (2 * h)

        checks = [(0, (), 1e-6 * STEP), (1, (3,), 1e-5), (2, (40,), 1e-5), (3, (10,), 1e-5), (3, (63,), 1e-5)]
        for i, idx, h in checks:
            g = float(np.asarray(grads[i])[idx])
            num = fd(i, idx, h)
            assert abs(g - num) <= 1e-6 * max(1.0, abs(num)), (i, idx, g, num)


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("real, cplx", [(np.float32, np.complex64), (np.float64, np.complex128)])
def test_dtype_follows_input(legs64, relerr, real, cplx):
    """float32 in → float32 out (and float64 → float64); the float32 kernel is accurate to float32 level.

    Measured error of the float32 kernel vs the float64 one: ≈ 5e-6 relative (LegS, N = 64, Δ = 1e-2).
    """
    Lambda, P, B, _, C = (np.asarray(x) for x in legs64)
    L = L_SMALL
    args = [jnp.asarray(x, cplx) for x in (Lambda, P, P, B, C)]
    step = real(STEP)
    K = kernel_dplr(*args, step, L)
    assert K.dtype == real
    assert relerr(K, kernel_dplr(Lambda, P, P, B, C, STEP, L)) < (1e-4 if real == np.float32 else 1e-15)
    assert kernel_dplr_ctilde(*args, step, L).dtype == real
    omega = roots_of_unity(L, real)
    assert omega.dtype == cplx
    P2 = args[1][None]
    assert kernel_spectrum_dplr(args[0], P2, P2, args[3], args[4], step, omega).dtype == cplx
    A = jnp.asarray(0.5 * np.eye(4), real)
    v = jnp.ones(4, real)
    assert kernel_generating_function(A, v, v, 16).dtype == cplx
