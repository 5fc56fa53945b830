"""The selective scan (float64): sequential vs parallel vs an explicit Python loop, the LTI case vs the
S4D kernel convolution, gradients, Hypothesis properties (causality, linearity in u), bad input, and a
smoke run of the benchmark script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s4lite import s4d
from s4lite.convolution import causal_conv
from s4lite import selective

ROOT = Path(__file__).resolve().parents[1]


# jitted: one compilation per shape, method and B rule (eager, the scan dispatches op by op);
# the bad-input checks below call the plain function
scan = jax.jit(selective.selective_scan, static_argnames=("method", "b_rule"))
selective_scan = selective.selective_scan


def random_inputs(seed, L=12, d_in=3, N=4):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((L, d_in))
    delta = np.exp(rng.uniform(np.log(1e-2), np.log(1.0), (L, d_in)))
    A = -np.exp(rng.standard_normal((d_in, N)))
    B = rng.standard_normal((L, N))
    C = rng.standard_normal((L, N))
    D = rng.standard_normal(d_in)
    return u, delta, A, B, C, D


def python_loop(u, delta, A, B, C, D, b_rule="euler"):
    """The recurrence written out with NumPy, one channel, state and step at a time."""
    L, d_in = u.shape
    N = A.shape[1]
    x = np.zeros((d_in, N))
    y = np.zeros((L, d_in))
    for t in range(L):
        for d in range(d_in):
            for n in range(N):
                a = np.exp(delta[t, d] * A[d, n])
                b = delta[t, d] * B[t, n] if b_rule == "euler" else (a - 1) / A[d, n] * B[t, n]
                x[d, n] = a * x[d, n] + b * u[t, d]
            y[t, d] = x[d] @ C[t] + D[d] * u[t, d]
    return y


@pytest.mark.parametrize("b_rule", ["euler", "zoh"])
def test_sequential_parallel_loop_agree(b_rule):
    args = random_inputs(0)
    ref = python_loop(*args, b_rule=b_rule)
    seq = scan(*args, method="sequential", b_rule=b_rule)
    par = scan(*args, method="parallel", b_rule=b_rule)
    assert seq.shape == ref.shape
    np.testing.assert_allclose(seq, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(par, ref, rtol=1e-12, atol=1e-12)


def test_long_sequence_parallel_matches_sequential():
    u, delta, A, B, C, D = random_inputs(1, L=1000, d_in=4, N=8)
    seq = scan(u, delta, A, B, C, D)
    par = scan(u, delta, A, B, C, D, method="parallel")
    err = float(jnp.max(jnp.abs(seq - par)) / jnp.max(jnp.abs(seq)))
    assert err < 1e-12, err


def lti_inputs(L=64, d_in=3, N=4, seed=2):
    """A selective scan whose Δ, B, C do not depend on t."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((L, d_in))
    step = np.exp(rng.uniform(np.log(1e-2), np.log(0.5), d_in))
    A = -np.exp(rng.standard_normal((d_in, N)))
    b, c = rng.standard_normal(N), rng.standard_normal(N)
    return u, step, A, b, c


@pytest.mark.parametrize("b_rule", ["zoh", "euler"])
def test_lti_case_is_the_s4d_convolution(b_rule):
    """Constant Δ, B, C: channel d is the LTI SSM (diag A_d, B, C) with step Δ_d. A real diagonal
    system is kernel_s4d's conjugate-pair form with C halved (2 Re of a real number). With Euler's
    B̄ = ΔB, the ZOH kernel of B' = B ΔA / (e^{ΔA} − 1) gives the same B̄."""
    u, step, A, b, c = lti_inputs()
    L, d_in = u.shape
    delta = np.broadcast_to(step, (L, d_in))
    y = scan(u, delta, A, np.tile(b, (L, 1)), np.tile(c, (L, 1)), method="parallel", b_rule=b_rule)
    for d in range(d_in):
        bd = b if b_rule == "zoh" else b * step[d] * A[d] / np.expm1(step[d] * A[d])
        K = s4d.kernel_s4d(A[d] + 0j, bd + 0j, c / 2 + 0j, step[d], L, "zoh")
        ref = causal_conv(u[:, d], K)
        np.testing.assert_allclose(y[:, d], ref, atol=1e-11)


def test_gradients_of_both_methods_agree():
    args = random_inputs(3, L=16)

    def loss(method):
        def f(u, delta, A, B, C, D):
            return jnp.sum(jnp.sin(scan(u, delta, A, B, C, D, method=method)))

        return jax.jit(jax.grad(f, argnums=tuple(range(6))))

    g_seq = loss("sequential")(*args)
    g_par = loss("parallel")(*args)
    for name, a, b in zip("u delta A B C D".split(), g_seq, g_par):
        assert np.all(np.isfinite(a)), name
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    # and against a finite difference of one entry of delta
    eps = 1e-6
    u, delta, A, B, C, D = args
    dp, dm = delta.copy(), delta.copy()
    dp[5, 1] += eps
    dm[5, 1] -= eps
    f = lambda dl: float(jnp.sum(jnp.sin(scan(u, dl, A, B, C, D))))  # noqa: E731
    fd = (f(dp) - f(dm)) / (2 * eps)
    assert abs(fd - float(g_par[1][5, 1])) < 1e-6 * max(1.0, abs(fd))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 11), method=st.sampled_from(["sequential", "parallel"]))
def test_causality(seed, cut, method):
    """Changing u, Δ, B, C at times ≥ cut leaves y before cut unchanged."""
    u, delta, A, B, C, D = random_inputs(seed)
    u2, delta2, _, B2, C2, _ = random_inputs(seed + 1)
    mix = lambda a, b: np.concatenate([a[:cut], b[cut:]])  # noqa: E731
    y1 = scan(u, delta, A, B, C, D, method=method)
    y2 = scan(mix(u, u2), mix(delta, delta2), A, mix(B, B2), mix(C, C2), D, method=method)
    np.testing.assert_allclose(y1[:cut], y2[:cut], rtol=1e-12, atol=1e-12)
    assert not np.allclose(y1[cut:], y2[cut:])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), a=st.floats(-3, 3), b=st.floats(-3, 3),
       method=st.sampled_from(["sequential", "parallel"]))  # fmt: skip
def test_linear_in_u_for_fixed_delta_b_c(seed, a, b, method):
    u, delta, A, B, C, D = random_inputs(seed)
    v = random_inputs(seed + 7)[0]
    f = lambda x: np.asarray(scan(x, delta, A, B, C, D, method=method))  # noqa: E731
    np.testing.assert_allclose(f(a * u + b * v), a * f(u) + b * f(v), rtol=1e-10, atol=1e-10)


u0, d0, A0, B0, C0, D0 = random_inputs(0)
BAD = [
    ("u", lambda: selective_scan(u0[:, 0], d0, A0, B0, C0)),
    ("delta", lambda: selective_scan(u0, d0[:-1], A0, B0, C0)),
    ("A", lambda: selective_scan(u0, d0, A0[:-1], B0, C0)),
    ("A", lambda: selective_scan(u0, d0, A0 + 0j, B0, C0)),
    ("B", lambda: selective_scan(u0, d0, A0, B0[:, :-1], C0)),
    ("C", lambda: selective_scan(u0, d0, A0, B0, C0[:-1])),
    ("D", lambda: selective_scan(u0, d0, A0, B0, C0, D0[:-1])),
    ("method", lambda: selective_scan(u0, d0, A0, B0, C0, method="fft")),
    ("b_rule", lambda: selective_scan(u0, d0, A0, B0, C0, b_rule="bilinear")),
]


@pytest.mark.parametrize("name,call", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_input(name, call):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


@pytest.mark.slow
def test_benchmark_quick_smoke(tmp_path):
    """benchmarks/selective_scan.py --quick runs end to end on the CPU and writes its JSON record."""
    out = tmp_path / "scan.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "selective_scan.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    for key in ("command", "commit", "device", "date"):
        assert rec["meta"][key], key
    assert rec["scan"] and rec["kernel"]
    assert all(r["ms"] > 0 and r["method"] in ("sequential", "parallel") for r in rec["scan"])
    assert {r["impl"] for r in rec["kernel"]} == {"s4d", "s4"}
    # a bad option (one line, exit status 1): tests/test_benchmarks_smoke.py, with every other script
