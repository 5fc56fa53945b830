"""The recurrent and convolutional views against explicit Python loops, and against each other."""

import numpy as np
import pytest

from s4lite.convolution import causal_conv, kernel_naive
from s4lite.discretize import bilinear
from s4lite.recurrence import scan_ssm

TOL = 1e-12  # max-abs relative error (all float64)
N, L = 4, 50  # one shape for the whole file: each new shape costs a JIT compilation


def _loop_scan(Ab, Bb, C, u, x0=None):
    x = np.zeros(Ab.shape[0], dtype=np.result_type(Ab, Bb, C, u)) if x0 is None else np.array(x0)
    ys, xs = [], []
    for u_k in u:
        x = Ab @ x + Bb * u_k
        xs.append(x)
        ys.append(C @ x)
    return np.array(ys), np.array(xs)


def _loop_kernel(Ab, Bb, C, L):
    return np.array([C @ np.linalg.matrix_power(Ab, j) @ Bb for j in range(L)])


def _loop_conv(u, K):
    y = np.zeros(len(u), dtype=np.result_type(u, K))
    for k in range(len(u)):
        for j in range(k + 1):
            y[k] += K[j] * u[k - j]
    return y


@pytest.fixture
def system(rng, stable_system):
    A, B, C = stable_system(rng, N)
    Ab, Bb = (np.asarray(a) for a in bilinear(A, B, 0.3))
    u = rng.standard_normal(L)
    return Ab, Bb, C, u


def test_scan_matches_loop(system, relerr, rng):
    Ab, Bb, C, u = system
    y, states = scan_ssm(Ab, Bb, C, u)
    y_ref, x_ref = _loop_scan(Ab, Bb, C, u)
    assert y.shape == (L,) and states.shape == (L, N)
    assert relerr(y, y_ref) < TOL and relerr(states, x_ref) < TOL
    x0 = rng.standard_normal(N)
    y, states = scan_ssm(Ab, Bb, C, u, x0)
    y_ref, x_ref = _loop_scan(Ab, Bb, C, u, x0)
    assert relerr(y, y_ref) < TOL and relerr(states, x_ref) < TOL


def test_kernel_naive_matches_matrix_powers(system, relerr):
    Ab, Bb, C, _ = system
    K = kernel_naive(Ab, Bb, C, L)
    assert K.shape == (L,)
    assert relerr(K, _loop_kernel(Ab, Bb, C, L)) < TOL
    K1 = kernel_naive(Ab, Bb, C, 1)  # L = 1: just C B̄
    assert K1.shape == (1,) and abs(float(K1[0]) - C @ Bb) < 1e-14


def test_kernel_naive_complex(rng, stable_system, relerr):
    A, B, C = stable_system(rng, N, complex_=True)
    Ab, Bb = (np.asarray(a) for a in bilinear(A, B, 0.3))
    K = kernel_naive(Ab, Bb, C, L)
    assert np.iscomplexobj(np.asarray(K))
    assert relerr(K, _loop_kernel(Ab, Bb, C, L)) < TOL


@pytest.mark.parametrize("kind", ["real", "complex K", "complex u"])
def test_causal_conv_matches_double_loop(rng, relerr, kind):
    u = rng.standard_normal(L)
    K = rng.standard_normal(L) * np.exp(-0.1 * np.arange(L))
    if kind == "complex K":
        K = K + 1j * rng.standard_normal(L)
    if kind == "complex u":
        u = u + 1j * rng.standard_normal(L)
    y = causal_conv(u, K)
    assert y.shape == (L,)
    assert np.iscomplexobj(np.asarray(y)) == (kind != "real")
    assert relerr(y, _loop_conv(u, K)) < TOL


def test_causal_conv_has_no_wraparound():
    """A late impulse in u convolved with a kernel that is nonzero at the end: nothing wraps to the start."""
    u = np.zeros(L)
    u[-1] = 1.0
    K = np.ones(L)
    y = np.asarray(causal_conv(u, K))
    np.testing.assert_allclose(y[:-1], 0.0, atol=1e-14)
    assert abs(y[-1] - 1.0) < 1e-14


def test_three_views_agree(system, relerr):
    """Recurrence (scan) == convolution with the naive kernel, from a zero state."""
    Ab, Bb, C, u = system
    y_scan, _ = scan_ssm(Ab, Bb, C, u)
    y_conv = causal_conv(u, kernel_naive(Ab, Bb, C, L))
    assert relerr(y_conv, y_scan) < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_dtype_follows_input(system, dtype):
    Ab, Bb, C, u = (x.astype(dtype) for x in system)
    y, states = scan_ssm(Ab, Bb, C, u)
    assert y.dtype == dtype and states.dtype == dtype
    K = kernel_naive(Ab, Bb, C, L)
    assert K.dtype == dtype
    assert causal_conv(u, K).dtype == dtype
