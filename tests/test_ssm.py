"""s4lite.ssm.simulate against scipy.signal.lsim and the closed-form free response."""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from s4lite.ssm import foh_matrices, simulate

RTOL = 1e-11  # relative to max |reference|; measured ≤ 6e-15 on this machine (brief: ≤ 1e-9)


def _lsim(A, B, C, D, u, t, x0=None):
    sys = (A, B[:, None], C[None, :], np.array([[D]]))
    _, y, x = scipy.signal.lsim(sys, u, t, X0=x0)  # interp=True (first-order hold), the default
    return y, x


@pytest.mark.parametrize("N, D, with_x0", [(1, 0.0, False), (4, -1.3, True)])
def test_simulate_matches_lsim(rng, stable_system, relerr, N, D, with_x0):
    A, B, C = stable_system(rng, N)
    t = np.linspace(0.0, 10.0, 201)
    u = np.sin(1.3 * t) + 0.5 * rng.standard_normal(t.shape)
    x0 = rng.standard_normal(N) if with_x0 else None
    y, x = simulate(A, B, C, D, u, t, x0)
    y_ref, x_ref = _lsim(A, B, C, D, u, t, x0)
    assert y.shape == (t.size,) and x.shape == (t.size, N)
    assert relerr(y, y_ref) < RTOL
    assert relerr(x, np.reshape(x_ref, (t.size, N))) < RTOL


def test_simulate_free_response_nonuniform_times(rng, stable_system, relerr):
    """u = 0: x(t) = e^{tA} x0 exactly, also on non-uniform sample times (which lsim refuses)."""
    A, B, C = stable_system(rng, 4)
    t = np.sort(rng.uniform(0.0, 8.0, 201))  # same (N, L) as above: no new compilation
    t[0] = 0.0
    x0 = rng.standard_normal(4)
    y, x = simulate(A, B, C, 0.0, np.zeros_like(t), t, x0)
    x_ref = np.stack([scipy.linalg.expm(A * tk) @ x0 for tk in t])
    assert relerr(x, x_ref) < 1e-12
    assert relerr(y, x_ref @ C) < 1e-12


def test_simulate_linear_input_is_exact_on_coarse_grid(rng, stable_system, relerr):
    """First-order hold is exact for linear u: a coarse and a fine grid agree at shared times."""
    A, B, C = stable_system(rng, 4)
    t_fine = np.linspace(0.0, 4.0, 201)
    t_coarse = t_fine[::20]
    y_fine, _ = simulate(A, B, C, 0.2, 1.0 - 0.5 * t_fine, t_fine)
    y_coarse, _ = simulate(A, B, C, 0.2, 1.0 - 0.5 * t_coarse, t_coarse)
    assert relerr(y_coarse, np.asarray(y_fine)[::20]) < 1e-12


def test_foh_matrices_closed_form(rng, stable_system, relerr):
    """Φ = e^{ΔA}; Γ0 + Γ1 = A⁻¹(e^{ΔA} − I)B (constant input); Γ1 = A⁻²(e^{ΔA} − I − ΔA)B / Δ."""
    A, B, _ = stable_system(rng, 4)
    dt = 0.37
    Phi, G0, G1 = foh_matrices(A, B, dt)
    E = scipy.linalg.expm(A * dt)
    Ainv = np.linalg.inv(A)
    assert relerr(Phi, E) < 1e-12
    assert relerr(np.asarray(G0) + np.asarray(G1), Ainv @ (E - np.eye(4)) @ B) < 1e-11
    assert relerr(G1, Ainv @ Ainv @ (E - np.eye(4) - dt * A) @ B / dt) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_input(rng, stable_system, dtype):
    A, B, C = stable_system(rng, 4)
    t = np.linspace(0.0, 10.0, 201)
    y, x = simulate(*(v.astype(dtype) for v in (A, B, C)), dtype(0.5), np.sin(t).astype(dtype), t.astype(dtype))
    assert y.dtype == dtype and x.dtype == dtype
    if dtype == np.float32:  # still accurate to float32 level against the float64 run
        y64, _ = simulate(A, B, C, 0.5, np.sin(t), t)
        assert np.max(np.abs(np.asarray(y) - np.asarray(y64))) < 1e-4 * np.max(np.abs(np.asarray(y64)))
