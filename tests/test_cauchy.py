"""The three Cauchy kernels against an explicit double loop and against each other."""

import numpy as np
import pytest

from s4lite.cauchy import cauchy, cauchy_conj, cauchy_naive

TOL = 1e-13  # max-abs relative error


def _loop(v, z, w):
    out = np.zeros(len(z), dtype=complex)
    for j in range(len(z)):
        for i in range(len(w)):
            out[j] += v[i] / (z[j] - w[i])
    return out


@pytest.fixture
def data(rng):
    N, M = 6, 9
    w = -rng.uniform(0.1, 1.0, N) + 1j * rng.standard_normal(N)
    z = rng.uniform(0.0, 2.0, M) + 1j * rng.standard_normal(M)  # right half-plane: never hits a pole
    v = rng.standard_normal((3, 2, N)) + 1j * rng.standard_normal((3, 2, N))
    return v, z, w


def test_naive_matches_loop(data, relerr):
    v, z, w = data
    k = cauchy_naive(v, z, w)
    assert k.shape == (3, 2, 9)
    for a in range(3):
        for b in range(2):
            assert relerr(k[a, b], _loop(v[a, b], z, w)) < TOL


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_matmul_form_matches_naive(data, relerr, batch):
    v, z, w = data
    v = v[(0,) * (2 - len(batch))]  # shape (*batch, N)
    k = cauchy(v, z, w)
    assert k.shape == (*batch, 9)
    assert relerr(k, cauchy_naive(v, z, w)) < TOL


def test_conj_pairs_match_naive_on_full_arrays(data, relerr):
    v, z, w = data
    k = cauchy_conj(v, z, w)
    full = cauchy_naive(np.concatenate([v, v.conj()], axis=-1), z, np.concatenate([w, w.conj()]))
    assert k.shape == full.shape == (3, 2, 9)
    assert relerr(k, full) < TOL


def test_conj_pairs_real_on_real_axis(data):
    """With conjugate-closed (v, w), the kernel at real z is real: Σ v/(z−w) + conj(v/(z−w))."""
    v, _, w = data
    z = np.linspace(0.0, 3.0, 9)
    k = np.asarray(cauchy_conj(v[0, 0], z, w))
    assert np.abs(k.imag).max() < 1e-13 * np.abs(k).max()
