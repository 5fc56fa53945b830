"""Tests for s4lite.layer: initialization, the layer's kernel, CNN == RNN, the two convolutions, bad input.

Exactness checks run in float64 (tests/conftest.py turns it on; ``init_s4`` returns float32 parameters,
so they are cast with :func:`f64`). Sizes are tiny: H ≤ 4 channels, N ≤ 16 states, L ≤ 100 steps.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import convolution, discretize, hippo, layer
from s4lite.kernel import kernel_dplr_ctilde


# jit-compiled entry points: one compilation each is much cheaper than eager op-by-op dispatch.
# (s4_apply_recurrent stays eager: its set-up solves for C on the host and needs concrete parameters.)
s4_apply = jax.jit(layer.s4_apply, static_argnames="conv")
s4_kernel = jax.jit(layer.s4_kernel, static_argnums=1)
kernel_dplr_ctilde_jit = jax.jit(kernel_dplr_ctilde, static_argnums=6)
kernel_naive = jax.jit(convolution.kernel_naive, static_argnums=3)
causal_conv = jax.jit(convolution.causal_conv)


def f64(params):
    """The parameter dict with every leaf cast to float64."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)


@partial(jax.jit, static_argnums=(1, 2, 3))
def perturbed_params(key, H: int, N: int, scale: float = 0.1):
    """``init_s4`` parameters (float64) with P, B and Im Λ moved off the HiPPO values, so that no check
    relies on the special structure of the initialization."""
    p = f64(layer.init_s4(key, H, N))
    ks = jax.random.split(jax.random.fold_in(key, 1), 3)
    p["P"] = p["P"] * (1.0 + scale * jax.random.normal(ks[0], p["P"].shape))
    p["B"] = p["B"] * (1.0 + scale * jax.random.normal(ks[1], p["B"].shape))
    p["im"] = p["im"] + scale * jax.random.normal(ks[2], p["im"].shape)
    p["D"] = jnp.linspace(-1.0, 1.0, H)
    return p


def full_system(params, h: int):
    """Complex ``(Lambda, P, B, Ct)`` of channel ``h`` with both members of every conjugate pair, ``(N,)``."""
    Lambda, P, B, Ct, step = layer.ssm_parts(params)
    full = lambda x: np.concatenate([np.asarray(x[h]), np.conj(np.asarray(x[h]))])  # noqa: E731
    return full(Lambda), full(P), full(B), full(Ct), float(step[h])


def max_rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------------------------
# initialization
# ----------------------------------------------------------------------------------------------


def test_init_s4_shapes_and_dtypes():
    H, N = 5, 12
    p = layer.init_s4(jax.random.PRNGKey(0), H, N)
    expected = {
        "log_neg_re": (H, N // 2),
        "im": (H, N // 2),
        "P": (H, N // 2, 2),
        "B": (H, N // 2, 2),
        "Ct": (H, N // 2, 2),
        "log_step": (H,),
        "D": (H,),
    }
    assert {k: v.shape for k, v in p.items()} == expected
    for k, v in p.items():
        assert v.dtype == jnp.float32, k
        assert np.all(np.isfinite(np.asarray(v))), k
    assert set(layer.SSM_KEYS) <= set(p)


def test_init_s4_lambda_stable_and_step_in_range():
    dt_min, dt_max = 1e-3, 1e-1
    p = layer.init_s4(jax.random.PRNGKey(3), 64, 16, dt_min, dt_max)
    Lambda, _, _, _, step = layer.ssm_parts(p)
    assert np.all(np.asarray(Lambda.real) < 0)
    log_step = np.asarray(p["log_step"], np.float64)
    # float32 storage: allow one ulp of float32 at the ends of the range
    assert np.all(log_step >= np.log(dt_min) - 1e-6) and np.all(log_step <= np.log(dt_max) + 1e-6)
    # log-uniform draws: 64 of them are not all in one half of the log range
    mid = 0.5 * (np.log(dt_min) + np.log(dt_max))
    assert 0 < np.sum(log_step < mid) < 64
    np.testing.assert_allclose(np.asarray(step), np.exp(log_step), rtol=1e-6)
    # every channel starts from the same HiPPO-LegS SSM; only Δ and C̃ differ
    for k in ("log_neg_re", "im", "P", "B"):
        np.testing.assert_array_equal(np.asarray(p[k]), np.broadcast_to(np.asarray(p[k][0]), p[k].shape))
    assert len(np.unique(np.asarray(p["log_step"]))) == 64
    np.testing.assert_array_equal(np.asarray(p["D"]), 1.0)


def test_init_s4_is_deterministic_in_the_key():
    a = layer.init_s4(jax.random.PRNGKey(7), 3, 8)
    b = layer.init_s4(jax.random.PRNGKey(7), 3, 8)
    c = layer.init_s4(jax.random.PRNGKey(8), 3, 8)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert not np.array_equal(np.asarray(a["Ct"]), np.asarray(c["Ct"]))


@pytest.mark.parametrize("N", [2, 8, 16])
@pytest.mark.parametrize("measure", ["legs", "lagt"])
def test_hippo_half_is_the_positive_imaginary_half_of_make_dplr(N, measure):
    Lh, Ph, Bh = layer.hippo_half(N, measure)
    Lambda, P, B, _ = hippo.make_dplr(N, measure)
    assert Lh.shape == Ph.shape == Bh.shape == (N // 2,)
    assert np.all(Lh.imag > 0)
    # every kept state is a state of make_dplr with the same (Lambda, P, B) ...
    for lam, pv, bv in zip(Lh, Ph, Bh):
        j = int(np.argmin(np.abs(Lambda - lam)))
        assert abs(Lambda[j] - lam) < 1e-12
        assert abs(P[j] - pv) < 1e-12 and abs(B[j] - bv) < 1e-12
    # ... and each dropped state is the conjugate partner of a kept one. Eigenvectors carry an arbitrary
    # phase e^{iφ} (a diagonal unitary change of basis: P ↦ e^{iφ}P, B ↦ e^{iφ}B leaves the SSM the same),
    # so compare what the phase cannot change: Λ, |P|, |B| and P·B̄ must be those of the conjugated state.
    full_L = np.concatenate([Lh, Lh.conj()])
    full_P = np.concatenate([Ph, Ph.conj()])
    full_B = np.concatenate([Bh, Bh.conj()])
    for lam, pv, bv in zip(Lambda, P, B):
        j = int(np.argmin(np.abs(full_L - lam)))
        assert abs(full_L[j] - lam) < 1e-12
        assert abs(abs(full_P[j]) - abs(pv)) < 1e-10 and abs(abs(full_B[j]) - abs(bv)) < 1e-10
        assert abs(full_P[j] * np.conj(full_B[j]) - pv * np.conj(bv)) < 1e-10


def test_hippo_half_reproduces_the_real_hippo_system():
    """The conjugate-closed system built from the half is the real HiPPO-LegS SSM in another basis:
    same spectrum and the same transfer function Bᵀ(zI − A)⁻¹B (with C = Bᵀ, which becomes B̄ᵀ in the
    unitary eigenbasis)."""
    N = 8
    Lh, Ph, Bh = layer.hippo_half(N)
    L, P, B = (np.concatenate([x, x.conj()]) for x in (Lh, Ph, Bh))
    A_full = np.diag(L) - np.outer(P, P.conj())
    A, Bhip = hippo.make_hippo(N, "legs")
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(A_full)), np.sort_complex(np.linalg.eigvals(A)), atol=1e-9
    )
    for z in (0.3 + 1.0j, 2.0 - 0.5j, 5.0j):
        h_ref = Bhip @ np.linalg.solve(z * np.eye(N) - A, Bhip)
        h_own = B.conj() @ np.linalg.solve(z * np.eye(N) - A_full, B)
        assert abs(h_own - h_ref) < 1e-10 * abs(h_ref), (z, h_own, h_ref)


# ----------------------------------------------------------------------------------------------
# the kernel
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("L", [37])  # odd: the irfft of the layer's half spectrum must handle it
def test_s4_kernel_equals_kernel_dplr_ctilde_on_full_system(L):
    H, N = 3, 8
    p = perturbed_params(jax.random.PRNGKey(1), H, N)
    K = np.asarray(s4_kernel(p, L))
    assert K.shape == (H, L) and K.dtype == np.float64
    for h in range(H):
        Lf, Pf, Bf, Ctf, step = full_system(p, h)
        ref = np.asarray(kernel_dplr_ctilde_jit(Lf, Pf, Pf, Bf, Ctf, step, L))
        err = max_rel(K[h], ref)
        print(f"h={h} L={L}: s4_kernel vs kernel_dplr_ctilde: {err:.2e}")
        assert err < 1e-12, (h, err)


@pytest.mark.parametrize("L", [64])
def test_s4_kernel_equals_naive_kernel_of_dense_bilinear_system(L):
    H, N = 3, 8
    p = perturbed_params(jax.random.PRNGKey(2), H, N)
    K = np.asarray(s4_kernel(p, L))
    for h in range(H):
        Lf, Pf, Bf, Ctf, step = full_system(p, h)
        A = np.diag(Lf) - np.outer(Pf, Pf.conj())
        Ab, Bb = (np.asarray(x) for x in discretize.bilinear(A, Bf, step))
        AL = np.linalg.matrix_power(Ab, L)
        C = np.linalg.solve((np.eye(N) - AL).T, Ctf)  # C (I − Ā^L) = C̃
        ref = np.real(np.asarray(kernel_naive(Ab, Bb, C, L)))
        err = max_rel(K[h], ref)
        print(f"h={h} L={L}: s4_kernel vs naive: {err:.2e}")
        assert err < 1e-11, (h, err)


def test_s4_kernel_is_differentiable_in_every_parameter():
    p = perturbed_params(jax.random.PRNGKey(4), 2, 8)
    g = jax.jit(jax.grad(lambda q: jnp.sum(layer.s4_kernel(q, 32) ** 2)))(p)
    for k in ("log_neg_re", "im", "P", "B", "Ct", "log_step"):
        v = np.asarray(g[k])
        assert np.all(np.isfinite(v)) and np.any(v != 0), k


# ----------------------------------------------------------------------------------------------
# convolution mode == recurrent mode
# ----------------------------------------------------------------------------------------------


def test_s4_apply_equals_recurrent_mode():
    H, N, L, Bsz = 4, 8, 50, 1  # batches of several sequences: test_fft_conv_equals_toeplitz_conv_…
    p = perturbed_params(jax.random.PRNGKey(5), H, N)
    u = jax.random.normal(jax.random.PRNGKey(6), (Bsz, L, H), jnp.float64)
    y_rnn = np.stack([np.asarray(layer.s4_apply_recurrent(p, u[b])) for b in range(Bsz)])
    ssm_part = y_rnn - np.asarray(p["D"] * u)  # errors relative to the SSM path alone, not the skip term
    for conv in (layer.fft_conv, layer.toeplitz_conv):
        y_cnn = np.asarray(s4_apply(p, u, conv=conv))
        assert y_cnn.shape == (Bsz, L, H) and y_cnn.dtype == np.float64
        err = float(np.max(np.abs(y_cnn - y_rnn)) / np.max(np.abs(ssm_part)))
        print(f"{getattr(conv, '__name__', conv)}: max |CNN − RNN| / max |K̄ * u| = {err:.2e}")
        assert err < 1e-10


def test_c_from_ctilde_batched_equals_per_channel_solve():
    """The stacked solve gives, channel by channel, the C of a plain per-channel solve."""
    H, N, L = 5, 8, 64
    p = perturbed_params(jax.random.PRNGKey(7), H, N)
    C = layer.c_from_ctilde(*(np.stack([full_system(p, h)[i] for h in range(H)])
                              for i in (0, 1, 3, 4)), L)
    assert C.shape == (H, N) and C.dtype == np.complex128
    for h in range(H):
        Lambda, P, _, Ct, step = full_system(p, h)
        A = np.diag(Lambda) - np.outer(P, P.conj())
        eye = np.eye(N)
        Ab = np.linalg.solve(eye * (2.0 / step) - A, eye * (2.0 / step) + A)
        ref = np.linalg.solve((eye - np.linalg.matrix_power(Ab, L)).T, Ct)
        err = float(np.max(np.abs(C[h] - ref)) / np.max(np.abs(ref)))
        print(f"channel {h}: max |C_batched − C_loop| / max |C| = {err:.1e}")
        assert err < 1e-12
        # and it solves the defining equation C (I − Ā^L) = C̃
        assert np.allclose(C[h] @ (eye - np.linalg.matrix_power(Ab, L)), Ct, atol=1e-10)


def test_s4_apply_unbatched_and_batched_agree():
    p = perturbed_params(jax.random.PRNGKey(8), 3, 8)
    u = jax.random.normal(jax.random.PRNGKey(9), (2, 20, 3), jnp.float64)
    y = np.asarray(s4_apply(p, u))
    np.testing.assert_allclose(np.asarray(s4_apply(p, u[1])), y[1], rtol=0, atol=1e-13)


def test_s4_apply_skip_term_is_D_times_u():
    p = perturbed_params(jax.random.PRNGKey(10), 3, 8)
    p["Ct"] = jnp.zeros_like(p["Ct"])  # no SSM path: y = D u exactly
    u = jax.random.normal(jax.random.PRNGKey(11), (2, 20, 3), jnp.float64)
    np.testing.assert_allclose(np.asarray(s4_apply(p, u)), np.asarray(p["D"] * u), atol=1e-15)


# ----------------------------------------------------------------------------------------------
# the two causal convolutions
# ----------------------------------------------------------------------------------------------


def _conv_inputs(Bsz=2, L=33, H=3, seed=12):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(k1, (Bsz, L, H), jnp.float64), jax.random.normal(k2, (H, L), jnp.float64)


def test_fft_conv_equals_toeplitz_conv_equals_causal_conv():
    u, K = _conv_inputs()
    un, Kn = np.asarray(u), np.asarray(K)
    y_fft = np.asarray(jax.jit(layer.fft_conv)(u, K))
    y_toe = np.asarray(jax.jit(layer.toeplitz_conv)(u, K))
    for b in range(u.shape[0]):
        for h in range(u.shape[2]):
            ref = np.asarray(causal_conv(u[b, :, h], K[h]))
            # and the definition itself, y_k = Σ_{j≤k} K_j u_{k−j}
            direct = np.array([sum(Kn[h, j] * un[b, k - j, h] for j in range(k + 1)) for k in range(un.shape[1])])
            np.testing.assert_allclose(ref, direct, atol=1e-12)
            np.testing.assert_allclose(y_fft[b, :, h], ref, atol=1e-12)
            np.testing.assert_allclose(y_toe[b, :, h], ref, atol=1e-12)


def test_toeplitz_matrix_is_lower_triangular_toeplitz():
    K = jnp.arange(1.0, 2 * 5 + 1).reshape(2, 5)
    T = np.asarray(layer.toeplitz_matrix(K))
    for h in range(2):
        for i in range(5):
            for j in range(5):
                assert T[h, i, j] == (K[h, i - j] if i >= j else 0.0)


def test_convolution_gradients_agree():
    u, K = _conv_inputs(L=21)
    w = jax.random.normal(jax.random.PRNGKey(13), u.shape, jnp.float64)  # a generic cotangent

    def loss(fn):
        return lambda u, K: jnp.sum(w * fn(u, K))

    def ref_fn(u, K):
        per_channel = jax.vmap(jax.vmap(convolution.causal_conv, in_axes=(1, 0), out_axes=1), in_axes=(0, None))
        return per_channel(u, K)

    grad = lambda fn: jax.jit(jax.grad(loss(fn), argnums=(0, 1)))(u, K)  # noqa: E731
    g_ref = grad(ref_fn)
    for fn in (layer.fft_conv, layer.toeplitz_conv):
        g = grad(fn)
        for got, ref, name in zip(g, g_ref, ("u", "K")):
            assert max_rel(got, ref) < 1e-12, (fn.__name__, name)
    # the hand-written backward pass also agrees with autodiff of the plain einsum
    plain = lambda u, K: jnp.einsum("hij,bjh->bih", layer.toeplitz_matrix(K), u)  # noqa: E731
    g_plain = grad(plain)
    g_toe = grad(layer.toeplitz_conv)
    for got, ref in zip(g_toe, g_plain):
        assert max_rel(got, ref) < 1e-13


@pytest.mark.parametrize("L", [1, 7])
def test_diagonal_sums_against_loop(L):
    M = jax.random.normal(jax.random.PRNGKey(L), (3, L, L), jnp.float64)
    s = np.asarray(layer.diagonal_sums(M))
    Mn = np.asarray(M)
    ref = np.zeros((3, L))
    for h in range(3):
        for m in range(L):
            for i in range(m, L):
                ref[h, m] += Mn[h, i, i - m]
    assert s.shape == (3, L)
    np.testing.assert_allclose(s, ref, atol=1e-13)


def test_fft_length_avoids_wraparound():
    for L in list(range(1, 130)) + [783, 784, 785, 1024, 4097]:
        n = layer.fft_length(L)
        assert n >= 2 * L - 1, L
        assert n & (n - 1) == 0, L  # a power of two, as documented
        assert n < 2 * (2 * L - 1) or L == 1  # and the smallest such


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    key = jax.random.PRNGKey(0)
    p = layer.init_s4(key, 3, 8)
    cases = [
        ("u", lambda: layer.s4_apply(p, jnp.ones((2, 10, 4)))),
        ("u", lambda: layer.s4_apply(p, jnp.ones((10,)))),
        ("u", lambda: layer.s4_apply(p, jnp.ones((10, 3)), conv=layer.toeplitz_conv)),
        ("u", lambda: layer.s4_apply_recurrent(p, jnp.ones((2, 10, 3)))),
        ("u", lambda: layer.s4_apply_recurrent(p, jnp.ones((10, 4)))),
        ("conv", lambda: layer.s4_apply(p, jnp.ones((2, 10, 3)), conv="direct")),  # a name, not a function
        ("N", lambda: layer.init_s4(key, 3, 7)),
        ("N", lambda: layer.init_s4(key, 3, 8.0)),
        ("N", lambda: layer.hippo_half(9)),
        ("H", lambda: layer.init_s4(key, 0, 8)),
        ("dt_min", lambda: layer.init_s4(key, 3, 8, dt_min=0.1, dt_max=0.01)),
        ("dt_min", lambda: layer.init_s4(key, 3, 8, dt_min=-1.0)),
        ("measure", lambda: layer.hippo_half(8, "legt")),
        ("L", lambda: layer.s4_kernel(p, 0)),
        ("params", lambda: jax.jit(lambda q: layer.recurrent_form(q, 10))(p)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=rf"^{name}:"):
            call()
