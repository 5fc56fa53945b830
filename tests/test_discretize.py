"""s4lite.discretize against scipy.signal.cont2discrete and scipy.linalg.expm."""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from s4lite import discretize as disc

TOL = 1e-12  # max-abs relative error against SciPy; measured ≤ 9e-16 (brief: ≤ 1e-9)

SCIPY_NAME = {"euler": "euler", "bilinear": "bilinear", "zoh": "zoh"}


def _scipy(A, B, step, method):
    N = A.shape[0]
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B[:, None], np.zeros((1, N)), np.zeros((1, 1))), step, method=method)
    return Ad, Bd[:, 0]


@pytest.mark.parametrize("method", disc.METHODS)
@pytest.mark.parametrize("N, step", [(1, 0.5), (4, 1.0)])
def test_matches_cont2discrete(rng, stable_system, relerr, method, N, step):
    A, B, _ = stable_system(rng, N)
    Ab, Bb = getattr(disc, method)(A, B, step)
    Ab_ref, Bb_ref = _scipy(A, B, step, SCIPY_NAME[method])
    assert Ab.shape == (N, N) and Bb.shape == (N,)
    assert relerr(Ab, Ab_ref) < TOL
    assert relerr(Bb, Bb_ref) < TOL
    # the dispatcher gives exactly the same arrays
    Ab2, Bb2 = disc.discretize(A, B, step, method.upper())
    np.testing.assert_array_equal(np.asarray(Ab2), np.asarray(Ab))
    np.testing.assert_array_equal(np.asarray(Bb2), np.asarray(Bb))


def test_discretize_default_is_bilinear(rng, stable_system):
    A, B, _ = stable_system(rng, 4)
    for got, want in zip(disc.discretize(A, B, 0.1), disc.bilinear(A, B, 0.1)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("step", [1e-3, 0.3, 2.0])
def test_zoh_state_matrix_is_expm(rng, stable_system, relerr, step):
    A, B, _ = stable_system(rng, 4)
    Ab, Bb = disc.zoh(A, B, step)
    E = scipy.linalg.expm(step * A)
    assert relerr(Ab, E) < 1e-12
    assert relerr(Bb, np.linalg.solve(A, (E - np.eye(4)) @ B)) < 1e-10


def test_zoh_singular_A():
    """A = 0 (an integrator): Ā = I, B̄ = ΔB, with no A⁻¹ involved."""
    B = np.array([1.0, -2.0, 0.5, 3.0])
    Ab, Bb = disc.zoh(np.zeros((4, 4)), B, 0.25)
    np.testing.assert_allclose(np.asarray(Ab), np.eye(4), rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(Bb), 0.25 * B, rtol=1e-15)


def test_complex_A_closed_forms(rng, stable_system, relerr):
    """Complex A (as in the DPLR basis): each method against its formula written in NumPy."""
    A, B, _ = stable_system(rng, 4, complex_=True)
    step = 0.2
    eye = np.eye(4)
    Ab, Bb = disc.euler(A, B, step)
    assert relerr(Ab, eye + step * A) < 1e-15 and relerr(Bb, step * B) < 1e-15
    Ab, Bb = disc.bilinear(A, B, step)
    back = np.linalg.inv(eye - step / 2 * A)
    assert relerr(Ab, back @ (eye + step / 2 * A)) < 1e-13
    assert relerr(Bb, back @ (step * B)) < 1e-13
    Ab, Bb = disc.zoh(A, B, step)
    E = scipy.linalg.expm(step * A)
    assert relerr(Ab, E) < 1e-12
    assert relerr(Bb, np.linalg.solve(A, (E - eye) @ B)) < 1e-11
    assert np.iscomplexobj(np.asarray(Ab))


def test_orders_of_accuracy(rng, stable_system):
    """One-step error of Ā against exp(ΔA): O(Δ²) for Euler, O(Δ³) for bilinear (halving Δ)."""
    A, B, _ = stable_system(rng, 4)
    ratios = {}
    for method in ("euler", "bilinear"):
        errs = []
        for step in (1e-2, 5e-3):
            Ab, _ = getattr(disc, method)(A, B, step)
            errs.append(np.max(np.abs(np.asarray(Ab) - scipy.linalg.expm(step * A))))
        ratios[method] = errs[0] / errs[1]
    assert 3.8 < ratios["euler"] < 4.2  # 2²
    assert 7.6 < ratios["bilinear"] < 8.4  # 2³


@pytest.mark.parametrize("real, cplx", [(np.float32, np.complex64), (np.float64, np.complex128)])
def test_dtype_follows_input(rng, stable_system, real, cplx):
    """float32 in → float32 out, float64 → float64, complex stays complex (a Python-float step adapts)."""
    A, B, _ = stable_system(rng, 4)
    for method in disc.METHODS:
        for step in (0.1, real(0.1)):
            Ab, Bb = disc.discretize(A.astype(real), B.astype(real), step, method)
            assert Ab.dtype == real and Bb.dtype == real, (method, step)
    Ab, Bb = disc.bilinear(A.astype(cplx), B.astype(cplx), 0.1)
    assert Ab.dtype == cplx and Bb.dtype == cplx
