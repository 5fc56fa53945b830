"""Bad input → ``ValueError`` whose message names the offending argument, for every public function.

Each case is (function, the argument that is wrong, a call). The message must contain the argument's
name as a whole word (so ``C`` does not count for ``Ct``). Cases the core does not handle yet are marked
``xfail(strict=True)`` with the reason, so that fixing the core turns them into failures to un-mark.

Every public function is checked the same way (``s4lite._check.checked``: a validator outside the
body); ``tests/test_show.py`` checks that each one is wrapped.
"""

import re

import numpy as np
import pytest

from s4lite import cauchy as cy
from s4lite import convolution as cv
from s4lite import discretize as dz
from s4lite import dplr_step as ds
from s4lite import hippo as hp
from s4lite import kernel as kn
from s4lite import recurrence as rc
from s4lite import show as sh
from s4lite import ssm

N = 4
A = -np.eye(N) + 0.1 * np.triu(np.ones((N, N)), 1)
B = np.ones(N)
C = np.arange(1.0, N + 1)
u = np.linspace(-1.0, 1.0, 8)
t = np.arange(8) * 0.1
NONSQUARE = np.ones((3, N))
SHORT = np.ones(N - 1)
Lam = -0.5 + 1j * np.arange(N)
Pv = 0.1 * np.ones(N) + 0j
Pr2 = 0.1 * np.ones((2, N)) + 0j
Cc = C + 0j

BAD_STEPS = {"zero": 0.0, "negative": -0.1, "nan": float("nan"), "inf": float("inf"), "complex": 0.1j}
BAD_LENGTHS = {"zero": 0, "negative": -3, "float": 2.5, "bool": True, "string": "8", "none": None, "npfloat": np.float64(8.0)}
BAD_SIZES = {"zero": 0, "float": 2.5, "bool": True}
# The full lists go through one function each (bilinear's step, kernel_naive's L); every other function
# shares the same checks in s4lite._check, so two values show that it calls them for the right argument.
FEW_STEPS = {"zero": 0.0, "nan": float("nan")}
FEW_LENGTHS = {"zero": 0, "float": 2.5}


def _disc():
    return ds.discrete_dplr(Lam, Pv, Pv, B, 0.1)


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


CASES = [
    # --- ssm
    ("simulate", "A", lambda: ssm.simulate(NONSQUARE, B, C, 0.0, u, t)),
    ("simulate", "B", lambda: ssm.simulate(A, SHORT, C, 0.0, u, t)),
    ("simulate", "C", lambda: ssm.simulate(A, B, SHORT, 0.0, u, t)),
    ("simulate", "D", lambda: ssm.simulate(A, B, C, np.ones(2), u, t)),
    ("simulate", "u", lambda: ssm.simulate(A, B, C, 0.0, np.ones((8, 1)), t)),
    ("simulate", "t", lambda: ssm.simulate(A, B, C, 0.0, u, t[:-1])),
    ("simulate", "t", lambda: ssm.simulate(A, B, C, 0.0, u, t[::-1])),
    ("simulate", "t", lambda: ssm.simulate(A, B, C, 0.0, u, np.where(t > 0.3, np.nan, t))),
    ("simulate", "x0", lambda: ssm.simulate(A, B, C, 0.0, u, t, SHORT)),
    ("foh_matrices", "A", lambda: ssm.foh_matrices(NONSQUARE, B, 0.1)),
    ("foh_matrices", "B", lambda: ssm.foh_matrices(A, SHORT, 0.1)),
    *[("foh_matrices", "dt", lambda s=s: ssm.foh_matrices(A, B, s)) for s in FEW_STEPS.values()],
    ("foh_matrices", "dt", lambda: ssm.foh_matrices(A, B, np.array([0.1, 0.2]))),
    # --- discretize
    *[(f, "A", lambda f=f: getattr(dz, f)(NONSQUARE, B, 0.1)) for f in dz.METHODS],
    *[(f, "B", lambda f=f: getattr(dz, f)(A, SHORT, 0.1)) for f in dz.METHODS],
    *[(f, "step", lambda f=f, s=s: getattr(dz, f)(A, B, s))
      for f in dz.METHODS for s in (BAD_STEPS if f == "bilinear" else FEW_STEPS).values()],
    ("bilinear", "step", lambda: dz.bilinear(A, B, np.array([0.1, 0.2]))),
    ("discretize", "A", lambda: dz.discretize(NONSQUARE, B, 0.1)),
    ("discretize", "B", lambda: dz.discretize(A, SHORT, 0.1, "zoh")),
    ("discretize", "step", lambda: dz.discretize(A, B, -1.0, "euler")),
    ("discretize", "method", lambda: dz.discretize(A, B, 0.1, "rk4")),
    ("discretize", "method", lambda: dz.discretize(A, B, 0.1, 3)),
    # --- recurrence / convolution
    ("scan_ssm", "Ab", lambda: rc.scan_ssm(NONSQUARE, B, C, u)),
    ("scan_ssm", "Bb", lambda: rc.scan_ssm(A, SHORT, C, u)),
    ("scan_ssm", "C", lambda: rc.scan_ssm(A, B, SHORT, u)),
    ("scan_ssm", "u", lambda: rc.scan_ssm(A, B, C, np.ones((8, 2)))),
    ("scan_ssm", "x0", lambda: rc.scan_ssm(A, B, C, u, SHORT)),
    ("kernel_naive", "Ab", lambda: cv.kernel_naive(NONSQUARE, B, C, 8)),
    ("kernel_naive", "Bb", lambda: cv.kernel_naive(A, SHORT, C, 8)),
    ("kernel_naive", "C", lambda: cv.kernel_naive(A, B, SHORT, 8)),
    *[("kernel_naive", "L", lambda L=L: cv.kernel_naive(A, B, C, L)) for L in BAD_LENGTHS.values()],
    ("causal_conv", "u", lambda: cv.causal_conv(np.ones((8, 2)), np.ones(8))),
    ("causal_conv", "K", lambda: cv.causal_conv(u, np.ones(7))),
    ("causal_conv", "K", lambda: cv.causal_conv(u, np.ones((8, 1)))),
    ("causal_conv", "u", lambda: cv.causal_conv(np.zeros(0), np.zeros(0))),
    # --- hippo
    *[(f, "N", lambda f=f, n=n: getattr(hp, f)(n, "legs"))
      for f in ("make_hippo", "low_rank_term", "make_nplr", "make_dplr", "eigenvector_condition")
      for n in BAD_SIZES.values()],
    *[(f, "measure", lambda f=f, m=m: getattr(hp, f)(4, m))
      for f in ("make_hippo", "low_rank_term", "make_nplr", "make_dplr", "eigenvector_condition")
      for m in ("legx", None)],
    *[(f, "N", lambda f=f, n=n: getattr(hp, f)(n)) for f in hp.MEASURES for n in BAD_SIZES.values()],
    ("dplr_to_dense", "P", lambda: hp.dplr_to_dense(Lam, np.ones(N - 1))),
    ("dplr_to_dense", "Q", lambda: hp.dplr_to_dense(Lam, Pv, Pr2)),
    ("dplr_to_dense", "Lambda", lambda: hp.dplr_to_dense(np.ones((N, N)), Pv)),
    # --- cauchy
    *[(f, "v", lambda f=f: getattr(cy, f)(np.ones((2, N - 1)), np.ones(5) * 2j, Lam))
      for f in ("cauchy_naive", "cauchy", "cauchy_conj")],
    *[(f, "z", lambda f=f: getattr(cy, f)(np.ones(N), np.ones((5, 1)), Lam))
      for f in ("cauchy_naive", "cauchy", "cauchy_conj")],
    *[(f, "w", lambda f=f: getattr(cy, f)(np.ones(N), np.ones(5), np.ones((N, 1))))
      for f in ("cauchy_naive", "cauchy", "cauchy_conj")],
    # --- kernel
    *[("roots_of_unity", "L", lambda L=L: kn.roots_of_unity(L)) for L in FEW_LENGTHS.values()],
    *[("half_spectrum_roots", "L", lambda L=L: kn.half_spectrum_roots(L)) for L in FEW_LENGTHS.values()],
    ("kernel_generating_function", "Ab", lambda: kn.kernel_generating_function(NONSQUARE, B, C, 8)),
    ("kernel_generating_function", "Bb", lambda: kn.kernel_generating_function(A, SHORT, C, 8)),
    ("kernel_generating_function", "C", lambda: kn.kernel_generating_function(A, B, SHORT, 8)),
    *[("kernel_generating_function", "L", lambda L=L: kn.kernel_generating_function(A, B, C, L))
      for L in FEW_LENGTHS.values()],
    ("woodbury_resolvent", "Lambda", lambda: kn.woodbury_resolvent(np.ones((N, N)), Pv, Pv, 1.0)),
    ("woodbury_resolvent", "P", lambda: kn.woodbury_resolvent(Lam, SHORT, Pv, 1.0)),
    ("woodbury_resolvent", "Q", lambda: kn.woodbury_resolvent(Lam, Pv, SHORT, 1.0)),
    ("woodbury_resolvent", "Q", lambda: kn.woodbury_resolvent(Lam, Pv, Pr2, 1.0)),
    ("woodbury_resolvent", "z", lambda: kn.woodbury_resolvent(Lam, Pv, Pv, np.ones(3))),
    ("woodbury_resolvent", "z", lambda: kn.woodbury_resolvent(Lam, Pv, Pv, np.ones(N))),
]

for _f, _c_name in (("kernel_dplr", "C"), ("kernel_dplr_ctilde", "Ct")):
    _fn = getattr(kn, _f)
    CASES += [
        (_f, "Lambda", lambda fn=_fn: fn(np.ones((N, N)), Pv, Pv, B, Cc, 0.1, 8)),
        (_f, "P", lambda fn=_fn: fn(Lam, SHORT, Pv, B, Cc, 0.1, 8)),
        (_f, "Q", lambda fn=_fn: fn(Lam, Pv, Pr2, B, Cc, 0.1, 8)),
        (_f, "B", lambda fn=_fn: fn(Lam, Pv, Pv, SHORT, Cc, 0.1, 8)),
        (_f, _c_name, lambda fn=_fn: fn(Lam, Pv, Pv, B, SHORT, 0.1, 8)),
        *[(_f, "step", lambda fn=_fn, s=s: fn(Lam, Pv, Pv, B, Cc, s, 8)) for s in FEW_STEPS.values()],
        (_f, "step", lambda fn=_fn: fn(Lam, Pv, Pv, B, Cc, np.array([0.1, 0.2]), 8)),
        *[(_f, "L", lambda fn=_fn, L=L: fn(Lam, Pv, Pv, B, Cc, 0.1, L)) for L in FEW_LENGTHS.values()],
    ]

_omega = np.exp(-2j * np.pi * np.arange(8) / 8)
CASES += [
    # --- kernel_spectrum_dplr (Steps 2 + 3) and kernel_dplr_conj (the layer's kernel)
    ("kernel_spectrum_dplr", "Lambda", lambda: kn.kernel_spectrum_dplr(np.ones((N, N)), Pv, Pv, B, Cc, 0.1, _omega)),
    ("kernel_spectrum_dplr", "P", lambda: kn.kernel_spectrum_dplr(Lam, SHORT, Pv, B, Cc, 0.1, _omega)),
    ("kernel_spectrum_dplr", "Q", lambda: kn.kernel_spectrum_dplr(Lam, Pv, Pr2, B, Cc, 0.1, _omega)),
    ("kernel_spectrum_dplr", "B", lambda: kn.kernel_spectrum_dplr(Lam, Pv, Pv, SHORT, Cc, 0.1, _omega)),
    ("kernel_spectrum_dplr", "Ct", lambda: kn.kernel_spectrum_dplr(Lam, Pv, Pv, B, SHORT, 0.1, _omega)),
    *[("kernel_spectrum_dplr", "step", lambda s=s: kn.kernel_spectrum_dplr(Lam, Pv, Pv, B, Cc, s, _omega))
      for s in FEW_STEPS.values()],
    ("kernel_spectrum_dplr", "omega", lambda: kn.kernel_spectrum_dplr(Lam, Pv, Pv, B, Cc, 0.1, np.ones((8, 1)))),
    ("kernel_spectrum_dplr", "cauchy_fn", lambda: kn.kernel_spectrum_dplr(Lam, Pv, Pv, B, Cc, 0.1, _omega, "cauchy")),
    ("kernel_dplr_conj", "Lambda", lambda: kn.kernel_dplr_conj(np.ones((N, N)), Pv, B, Cc, 0.1, 8)),
    ("kernel_dplr_conj", "P", lambda: kn.kernel_dplr_conj(Lam, SHORT, B, Cc, 0.1, 8)),
    ("kernel_dplr_conj", "P", lambda: kn.kernel_dplr_conj(Lam, Pr2, B, Cc, 0.1, 8)),
    ("kernel_dplr_conj", "B", lambda: kn.kernel_dplr_conj(Lam, Pv, SHORT, Cc, 0.1, 8)),
    ("kernel_dplr_conj", "Ct", lambda: kn.kernel_dplr_conj(Lam, Pv, B, SHORT, 0.1, 8)),
    *[("kernel_dplr_conj", "step", lambda s=s: kn.kernel_dplr_conj(Lam, Pv, B, Cc, s, 8)) for s in FEW_STEPS.values()],
    *[("kernel_dplr_conj", "L", lambda L=L: kn.kernel_dplr_conj(Lam, Pv, B, Cc, 0.1, L)) for L in FEW_LENGTHS.values()],
    ("kernel_dplr_conj", "cauchy_fn", lambda: kn.kernel_dplr_conj(Lam, Pv, B, Cc, 0.1, 8, cauchy_fn=3)),
    *[("kernel_dplr_conj", "chunks", lambda c=c: kn.kernel_dplr_conj(Lam, Pv, B, Cc, 0.1, 8, chunks=c)) for c in (0, 1.5)],
    # --- show
    ("show_source", "fns", lambda: sh.show_source()),
    ("show_source", "fns", lambda: sh.show_source(N)),
    ("source_of", "fn", lambda: sh.source_of("simulate")),
    # --- dplr_step
    ("discrete_dplr", "Lambda", lambda: ds.discrete_dplr(np.ones((N, N)), Pv, Pv, B, 0.1)),
    ("discrete_dplr", "P", lambda: ds.discrete_dplr(Lam, SHORT, Pv, B, 0.1)),
    ("discrete_dplr", "Q", lambda: ds.discrete_dplr(Lam, Pv, Pr2, B, 0.1)),
    ("discrete_dplr", "B", lambda: ds.discrete_dplr(Lam, Pv, Pv, SHORT, 0.1)),
    *[("discrete_dplr", "step", lambda s=s: ds.discrete_dplr(Lam, Pv, Pv, B, s)) for s in FEW_STEPS.values()],
    ("discrete_dplr", "step", lambda: ds.discrete_dplr(Lam, Pv, Pv, B, np.array([0.1, 0.2]))),
    ("scan_dplr", "C", lambda: ds.scan_dplr(_disc(), SHORT, u)),
    ("scan_dplr", "u", lambda: ds.scan_dplr(_disc(), Cc, np.ones((8, 2)))),
    ("scan_dplr", "x0", lambda: ds.scan_dplr(_disc(), Cc, u, SHORT)),
    ("dplr_step", "x", lambda: ds.dplr_step(_disc(), SHORT, 1.0)),
    ("dplr_step", "u_k", lambda: ds.dplr_step(_disc(), np.zeros(N), np.ones(N))),
    ("apply_A0", "x", lambda: ds.apply_A0(_disc(), SHORT)),
    ("apply_A1", "y", lambda: ds.apply_A1(_disc(), SHORT)),
    ("dense_from_discrete", "disc", lambda: ds.dense_from_discrete((Lam, Pv))),
]


def _id(case):
    values = case.values if hasattr(case, "values") else case
    return f"{values[0]}-{values[1]}"


@pytest.mark.parametrize("func, arg, call", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_raises_value_error_naming_argument(func, arg, call):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])", message), (
        f"{func}: ValueError does not name {arg!r}: {message!r}"
    )


def test_good_input_of_the_same_kinds_is_accepted():
    """Control: valid counterparts of the inputs above do not raise (NumPy ints for L and N, NumPy
    float steps, a capitalized measure, rank-2 factors), one function per kind of input (the checks are
    shared helpers of ``s4lite._check``). The valid paths are tested for values elsewhere."""
    dz.bilinear(A, B, np.float64(0.1))  # one method: all three share the check of the step
    cv.kernel_naive(A, B, C, np.int64(8))
    kn.roots_of_unity(np.int32(8))
    hp.make_dplr(np.int64(4), "LegT")
    kn.woodbury_resolvent(Lam, Pr2, Pr2, 1.0 + 2.0j)
    ds.discrete_dplr(Lam, Pr2, Pr2, B, np.float32(0.1))
    cy.cauchy_conj(np.ones((3, N)), np.ones(5), Lam)
    kn.kernel_dplr_conj(Lam, Pv, B, Cc, np.float32(0.1), np.int64(8), chunks=np.int64(2))
    for f in hp.MEASURES:
        getattr(hp, f)(np.int64(3))
