"""Theorem 2: the O(N) bilinear step of a DPLR SSM, and that it never forms an N × N matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import hippo
from s4lite.convolution import causal_conv, kernel_naive
from s4lite.discretize import bilinear
from s4lite.dplr_step import (
    DiscreteDPLR,
    apply_A0,
    apply_A1,
    dense_from_discrete,
    discrete_dplr,
    dplr_step,
    scan_dplr,
)
from s4lite.recurrence import scan_ssm

TOL = 1e-12  # max-abs relative error, float64
N, L, STEP = 64, 256, 0.05  # N = 64: an (N, N) shape cannot be confused with anything of size r ≤ 2


def _system(measure_or_random, rng, dplr_system):
    """(Lambda, P, Q, B, C) for a HiPPO measure (Q = P) or a random DPLR system with Q ≠ P."""
    if measure_or_random == "random":
        return dplr_system(rng, N, r=2)
    Lambda, P, B, _ = hippo.make_dplr(N, measure_or_random)
    C = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    return Lambda, P, P, B, C


CASES = ["legs", "legt", "random"]


@pytest.mark.parametrize("case", CASES)
def test_dense_from_discrete_is_bilinear(case, rng, dplr_system, relerr):
    Lambda, P, Q, B, _ = _system(case, rng, dplr_system)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    assert isinstance(disc, DiscreteDPLR)
    Ab, Bb = dense_from_discrete(disc)
    Ab_ref, Bb_ref = bilinear(hippo.dplr_to_dense(Lambda, P, Q), B, STEP)
    assert Ab.shape == (N, N) and Bb.shape == (N,)
    assert relerr(Ab, Ab_ref) < TOL
    assert relerr(Bb, Bb_ref) < TOL


def test_factors_A0_A1(rng, dplr_system, relerr):
    """A0 = 2/Δ I + A, A1 = (2/Δ I − A)⁻¹, Ā = A1 A0, B̄ = 2 A1 B, applied to vectors."""
    Lambda, P, Q, B, _ = dplr_system(rng, N, r=2)
    A = hippo.dplr_to_dense(Lambda, P, Q)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    x = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    eye = np.eye(N)
    assert relerr(apply_A0(disc, x), (2 / STEP * eye + A) @ x) < TOL
    A1 = np.linalg.inv(2 / STEP * eye - A)
    assert relerr(apply_A1(disc, x), A1 @ x) < TOL
    assert relerr(disc.Bb, 2 * A1 @ B) < TOL
    assert relerr(dplr_step(disc, x, 0.7), A1 @ (2 / STEP * eye + A) @ x + 0.7 * (2 * A1 @ B)) < TOL


@pytest.mark.parametrize("case", CASES)
def test_scan_dplr_equals_scan_ssm_equals_conv(case, rng, dplr_system, relerr):
    Lambda, P, Q, B, C = _system(case, rng, dplr_system)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    Ab, Bb = bilinear(hippo.dplr_to_dense(Lambda, P, Q), B, STEP)
    u = rng.standard_normal(L)
    y_dplr, x_dplr = scan_dplr(disc, C, u)
    y_scan, x_scan = scan_ssm(Ab, Bb, C, u)
    y_conv = causal_conv(u, kernel_naive(Ab, Bb, C, L))
    assert y_dplr.shape == (L,) and x_dplr.shape == (L, N)
    assert relerr(x_dplr, x_scan) < TOL
    assert relerr(y_dplr, y_scan) < TOL
    assert relerr(y_dplr, y_conv) < TOL


def test_scan_dplr_initial_state(rng, dplr_system, relerr):
    Lambda, P, Q, B, C = dplr_system(rng, N)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    Ab, Bb = bilinear(hippo.dplr_to_dense(Lambda, P, Q), B, STEP)
    u = rng.standard_normal(L)
    x0 = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    assert relerr(scan_dplr(disc, C, u, x0)[0], scan_ssm(Ab, Bb, C, u, x0)[0]) < TOL


def test_scan_dplr_under_jit(rng, dplr_system, relerr):
    Lambda, P, Q, B, C = dplr_system(rng, N)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    u = rng.standard_normal(L)
    assert relerr(jax.jit(scan_dplr)(disc, C, u)[0], scan_dplr(disc, C, u)[0]) < 1e-14


@pytest.mark.parametrize("real, cplx", [(np.float32, np.complex64), (np.float64, np.complex128)])
def test_dtype_follows_input(rng, dplr_system, real, cplx):
    Lambda, P, Q, B, C = (jnp.asarray(x, cplx) for x in dplr_system(rng, N))
    disc = discrete_dplr(Lambda, P, Q, B, real(STEP))
    assert all(a.dtype == cplx for a in disc)
    y, states = scan_dplr(disc, C, jnp.ones(L, real))
    assert y.dtype == cplx and states.dtype == cplx
    assert dense_from_discrete(disc)[0].dtype == cplx


# ----------------------------------------------------------------------------- no N × N inside a step

def _all_shapes(jaxpr) -> list[tuple[int, ...]]:
    """Shapes of every variable (inputs, constants, intermediates, outputs) of a jaxpr, recursively."""
    shapes = []

    def var_shapes(vs):
        for v in vs:
            aval = getattr(v, "aval", None)
            if aval is not None and hasattr(aval, "shape"):
                shapes.append(tuple(aval.shape))

    def walk(j):
        if hasattr(j, "jaxpr") and hasattr(j, "consts"):  # ClosedJaxpr
            j = j.jaxpr
        var_shapes(j.invars)
        var_shapes(j.constvars)
        var_shapes(j.outvars)
        for eqn in j.eqns:
            var_shapes(eqn.invars)
            var_shapes(eqn.outvars)
            for p in eqn.params.values():
                for sub in p if isinstance(p, (list, tuple)) else (p,):
                    if hasattr(sub, "eqns") or (hasattr(sub, "jaxpr") and hasattr(sub, "consts")):
                        walk(sub)

    walk(jaxpr)
    return shapes


@pytest.mark.parametrize("case", CASES)
def test_step_never_materializes_N_by_N(case, rng, dplr_system):
    Lambda, P, Q, B, _ = _system(case, rng, dplr_system)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    x = jnp.zeros(N, disc.A0_diag.dtype)
    shapes = _all_shapes(jax.make_jaxpr(lambda x, u: dplr_step(disc, x, u))(x, 1.0))
    assert shapes, "the jaxpr walker found no variables at all"
    assert (N,) in shapes
    assert (N, N) not in shapes
    assert max(int(np.prod(s)) for s in shapes) <= 2 * N  # only vectors and (r, N) factors, r ≤ 2


def test_jaxpr_walker_detects_N_by_N(rng, dplr_system):
    """Positive control: the same inspection does see the N × N matrix of the dense step."""
    Lambda, P, Q, B, _ = dplr_system(rng, N)
    disc = discrete_dplr(Lambda, P, Q, B, STEP)
    Ab, Bb = dense_from_discrete(disc)
    x = jnp.zeros(N, Ab.dtype)
    assert (N, N) in _all_shapes(jax.make_jaxpr(lambda x, u: Ab @ x + Bb * u)(x, 1.0))
    assert (N, N) in _all_shapes(jax.make_jaxpr(lambda d: dense_from_discrete(d)[0])(disc))
