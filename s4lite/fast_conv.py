r"""A leaner bf16 Toeplitz convolution for the GPU training step.

Causal convolution of every channel as a matrix product, :math:`y_{b,:,h} = T_h u_{b,:,h}` with
:math:`(T_h)_{ij} = \bar K_{h, i-j}` for :math:`i \ge j`. The backward pass needs

.. math::
    \frac{\partial \ell}{\partial u_{b,:,h}} = T_h^\top \frac{\partial \ell}{\partial y_{b,:,h}},
    \qquad
    \frac{\partial \ell}{\partial \bar K_{h,m}} = \sum_b \sum_i
        \frac{\partial \ell}{\partial y_{b,i,h}}\, u_{b,i-m,h}.

:func:`toeplitz_conv_lean` builds :math:`T` in bfloat16 straight from a bfloat16 :math:`\bar K`, keeps
only ``u`` and ``K`` for the backward pass (it rebuilds :math:`T` there, a cheap gather), and forms the
kernel gradient from a bfloat16 outer-product matrix summed along its diagonals in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array


def toeplitz_bf16(K: Array, cols: int | None = None) -> Array:
    """``T (H, L, cols)``, bfloat16: ``T[h, i, j] = K[h, i − j]`` for i ≥ j, else 0.

    ``T[i, j]`` depends on ``(j − i) mod 2L`` only: it is entry ``j − i`` of the
    circulant row ``s = [K_0, 0 (L times), K_{L−1}, …, K_1]``. Repeat ``s`` and cut it
    into rows of length 2L − 1, one short of its period: each row starts one place
    further back, so row i, column j is ``s[(j − i) mod 2L]``. Copies and reshapes
    only, no index gather. ``cols`` (default L) keeps the first columns only.
    """
    H, L = K.shape
    Kb = K.astype(jnp.bfloat16)
    zeros = jnp.zeros((H, L), jnp.bfloat16)
    s = jnp.concatenate([Kb[:, :1], zeros, Kb[:, :0:-1]], axis=1)  # (H, 2L)
    rows = jnp.tile(s, (1, L))[:, : L * (2 * L - 1)].reshape(H, L, 2 * L - 1)
    return rows[:, :, : (L if cols is None else cols)]


def _matmul(spec: str, a: Array, b: Array, out=jnp.float32) -> Array:
    """``einsum(spec, a, b)`` of bfloat16 copies, float32 sums, the result in ``out``."""
    a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
    if jax.default_backend() == "cpu":  # no bf16 x bf16 product on XLA:CPU: same numbers, in f32
        return jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32)).astype(out)
    return jnp.einsum(spec, a, b, preferred_element_type=out)


def diagonal_sums_f32(M: Array, upper: bool = False) -> Array:
    """``s[h, m] = Σ_i M[h, i, i − m]`` over the lower triangle, summed in float32, ``(H, L)``.

    Flattened and shifted by L, row i of ``M`` starts at i(L + 1) − L, so viewed as rows of
    length L + 1 every diagonal i − j = m lands in one column (c = L − m). The entries above the
    diagonal would wrap into those columns: they are zeroed first. ``upper=True`` sums the
    diagonals above instead, ``s[h, m] = Σ_i M[h, i, i + m]`` for m ≥ 1 (``s[h, 0] = 0``): padded
    at the end, column c of the rows of length L + 1 holds the diagonal j − i = c.
    """
    H, L, _ = M.shape
    if upper:
        flat = jnp.pad(jnp.triu(M, 1).reshape(H, L * L), ((0, 0), (0, L)))
        return jnp.sum(flat.reshape(H, L, L + 1), axis=1, dtype=jnp.float32)[:, :L]
    flat = jnp.pad(jnp.tril(M).reshape(H, L * L), ((0, 0), (L, 0)))
    s = jnp.sum(flat.reshape(H, L, L + 1), axis=1, dtype=jnp.float32)  # s[h, L − m]
    return s[:, :0:-1]


@jax.custom_vjp
def toeplitz_conv_lean(u: Array, K: Array) -> Array:
    """``u (B, L, H)``, ``K (H, L)`` → ``y (B, L, H)``, bfloat16 products, float32 sums."""
    return _matmul("hij,bjh->bih", toeplitz_bf16(K), u, out=u.dtype)


def _lean_fwd(u: Array, K: Array):
    return toeplitz_conv_lean(u, K), (u.astype(jnp.bfloat16), K)


def _lean_bwd(res, dy: Array):
    u, K = res
    du = _matmul("hij,bih->bjh", toeplitz_bf16(K), dy, out=dy.dtype)
    dT = _matmul("bih,bjh->hij", dy, u, out=jnp.bfloat16)
    return du, diagonal_sums_f32(dT).astype(K.dtype)


toeplitz_conv_lean.defvjp(_lean_fwd, _lean_bwd)


@jax.custom_vjp
def toeplitz_conv_fftgrad(u: Array, K: Array) -> Array:
    """As :func:`toeplitz_conv_lean`, but the kernel gradient by an FFT cross-correlation (≥ f32)."""
    return toeplitz_conv_lean(u, K)


def _fftgrad_fwd(u: Array, K: Array):
    return toeplitz_conv_lean(u, K), (u, K)


def _fftgrad_bwd(res, dy: Array):
    u, K = res
    L = u.shape[1]
    n = 1 << (2 * L - 1).bit_length()
    du = _matmul("hij,bih->bjh", toeplitz_bf16(K), dy).astype(dy.dtype)
    dt = jnp.promote_types(u.dtype, jnp.float32)  # at least float32 (float64 stays float64)
    U = jnp.fft.rfft(u.astype(dt), n=n, axis=1)
    G = jnp.fft.rfft(dy.astype(dt), n=n, axis=1)
    corr = jnp.fft.irfft(jnp.sum(G * jnp.conj(U), axis=0), n=n, axis=0)[:L]  # (L, H)
    return du, corr.T.astype(K.dtype)


toeplitz_conv_fftgrad.defvjp(_fftgrad_fwd, _fftgrad_bwd)


# ----------------------------------------------------------------------------------------------
# Blocked: only the first b columns of T, since T is block-Toeplitz too
# ----------------------------------------------------------------------------------------------


def toeplitz_conv_blocked(u: Array, K: Array, n_blocks: int = 4) -> Array:
    r"""The causal convolution by blocks: ``u (B, L, H)``, ``K (H, L)`` → ``(B, L, H)``.

    Cut time into n blocks of length b = L / n. ``T`` is block-Toeplitz: block (I, J)
    is :math:`C_{I-J}` (zero above the diagonal), :math:`C_d` being block d of the
    first block column ``C = T[:, :b]``. So

    .. math::
        y_I = \sum_{d=0}^{I} C_d\, u_{I-d}, \qquad
        \frac{\partial \ell}{\partial u_J} = \sum_{d=0}^{n-1-J} C_d^\top
            \frac{\partial \ell}{\partial y_{J+d}},

    n(n + 1)/2 block products instead of n² (the zero blocks are skipped), and only
    ``C``, 1/n of ``T``, is built. bfloat16 products, float32 sums. ``L`` is padded
    with zeros to a multiple of n (a causal convolution ignores what comes after).
    """
    L = u.shape[1]
    Lp = -(-L // n_blocks) * n_blocks
    if Lp != L:
        u = jnp.pad(u, ((0, 0), (0, Lp - L), (0, 0)))
        K = jnp.pad(K, ((0, 0), (0, Lp - L)))
    return blocked_products(u, K, n_blocks)[:, :L]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def blocked_products(u: Array, K: Array, n: int) -> Array:
    """:func:`toeplitz_conv_blocked` for L a multiple of n: the n block rows of y."""
    B, L, H = u.shape
    b = L // n
    C = toeplitz_bf16(K, b)  # (H, L, b): the blocks C_0, …, C_{n−1}, stacked down
    C_row = C.reshape(H, n, b, b).transpose(0, 2, 1, 3).reshape(H, b, L)  # side by side
    u_rev = u.reshape(B, n, b, H)[:, ::-1].reshape(B, L, H)  # [u_{n−1}; …; u_0]
    # y_I = [C_0 … C_I] [u_I; …; u_0]: (I + 1) b columns of C_row, rows of u_rev
    y = []
    for I in range(n):
        k = (I + 1) * b
        y.append(_matmul("hik,bkh->bih", C_row[:, :, :k], u_rev[:, L - k :], u.dtype))
    return jnp.concatenate(y, axis=1)


def _blocked_fwd(u: Array, K: Array, n: int):
    return blocked_products(u, K, n), (u.astype(jnp.bfloat16), K)


def _blocked_bwd(n: int, res, dy: Array):
    """∂u by the transposed blocks; ∂K from ∂C_d = Σ_b Σ_{I≥d} dy_I u_{I−d}ᵀ."""
    u, K = res
    B, L, H = u.shape
    b = L // n
    C = toeplitz_bf16(K, b)
    # du_J = [C_0; …; C_{n−1−J}]ᵀ [dy_J; …; dy_{n−1}]
    du = [_matmul("hki,bkh->bih", C[:, : L - J * b], dy[:, J * b :], dy.dtype)
          for J in range(n)]  # fmt: skip
    dy_blocks, u_blocks = dy.reshape(B, n, b, H), u.reshape(B, n, b, H)
    dC = [
        _matmul("bIih,bIjh->hij", dy_blocks[:, d:], u_blocks[:, : n - d], jnp.bfloat16)
        for d in range(n)
    ]
    dK = lag_sums(jnp.stack(dC, axis=1))
    return jnp.concatenate(du, axis=1), dK.astype(K.dtype)


def lag_sums(C: Array) -> Array:
    """``s (H, n b)``, float32: ``s[h, m] = Σ C[h, d, i, j]`` over all d b + i − j = m.

    ``C (H, n, b, b)`` holds the products of block lag d: entry (i, j) is at lag
    d b + i − j. Lag d b + t (0 ≤ t < b) lies on diagonal t of ``C_d`` and, for
    t ≥ 1, on diagonal b − t above the diagonal of ``C_{d+1}``; the diagonals above
    ``C_0``'s are negative lags.
    """
    H, n, b, _ = C.shape
    C = C.reshape(H * n, b, b)
    low = diagonal_sums_f32(C).reshape(H, n, b)  # lag d b + t, t ≥ 0
    up = diagonal_sums_f32(C, upper=True).reshape(H, n, b)  # lag d b − t, t ≥ 1
    from_next = jnp.roll(up[:, 1:, ::-1], 1, axis=-1)  # [0, up[b − 1], …, up[1]]
    return (low + jnp.pad(from_next, ((0, 0), (0, 1), (0, 0)))).reshape(H, n * b)


blocked_products.defvjp(_blocked_fwd, _blocked_bwd)
