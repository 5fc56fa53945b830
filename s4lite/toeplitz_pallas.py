r"""The causal convolution as Toeplitz products whose tiles never reach memory (Pallas; Triton on a GPU).

:func:`s4lite.fast_conv.toeplitz_conv_lean` writes :math:`T_h` (``T[h, i, j] = K[h, i − j]``) to memory:
at sMNIST size, H = 128 and L = 784, that is 157 MB per layer, written once and read back by
every product, and half of it is the zero upper triangle, multiplied all the same. The kernel
gradient goes the same way: an (H, L, L) matrix of products, written, then summed along its
diagonals.

Here time is cut into blocks of b steps, and a program owns one channel h and one block. The
tile :math:`T_{IJ}` (rows of block I, columns of block J) is formed where it is multiplied,
by reading :math:`K_h` at the lags ``(I − J) b + r − c`` (one row of K, which stays in cache),
and the tiles above the diagonal are skipped:

.. math::
    y_I = \sum_{J \le I} T_{IJ}\, u_J, \qquad
    \frac{\partial \ell}{\partial u_J} = \sum_{I \ge J} T_{IJ}^\top \frac{\partial \ell}{\partial y_I},
    \qquad
    C_d = \sum_{I \ge d} \frac{\partial \ell}{\partial y_I}\, u_{I-d}^\top .

Entry (r, c) of the b × b matrix :math:`C_d` collects every product at lag d b + r − c, so the
kernel gradient :math:`\partial\ell/\partial \bar K_m` is a sum along diagonals of the n small
matrices :math:`C_d` (:func:`s4lite.fast_conv.lag_sums`), not of an (L, L) one.
Products in bfloat16, sums in float32, like :func:`~s4lite.fast_conv.toeplitz_conv_lean`.

The kernels work on ``(H, L, B)`` arrays (time, then batch, inside each channel), with L padded
to whole blocks and B to a power of two (zeros: a causal convolution ignores what comes after).
On a CPU the same kernels run in Pallas's interpreter; that is how the tests check them.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .fast_conv import lag_sums

Array = jax.Array

#: Block length and Triton settings the training step uses (measured on an H200:
#: ``artifacts/bench/``).
TILES = {"b": 64, "warps": 4, "stages": 2}


def _interpret() -> bool:
    return jax.default_backend() != "gpu"


def _dot(a: Array, b: Array, dims=(((1,), (0,)), ((), ()))) -> Array:
    """bfloat16 × bfloat16 with float32 sums (in float32 on a CPU, which has no such product)."""
    if _interpret():
        a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _products_kernel(b: int, n: int, transpose: bool):
    """Program (h, o): ``Σ_p T_op x_p`` (or ``Σ_p T_poᵀ x_p``) over the tiles on or below the diagonal.

    ``k_ref`` is K's row with Lp zeros in front: entry Lp + m is the lag m (zero for m < 0).
    """

    def kernel(k_ref, x_ref, o_ref):
        from jax.experimental import pallas as pl

        o = pl.program_id(1)
        Lp = n * b
        r = jax.lax.broadcasted_iota(jnp.int32, (b, b), 0)
        c = jax.lax.broadcasted_iota(jnp.int32, (b, b), 1)

        def add_tile(p, acc):
            lag = (p - o) * b + c - r if transpose else (o - p) * b + r - c
            tile = k_ref[Lp + lag]  # (b, b): the tile T_op, or T_poᵀ
            return acc + _dot(tile, x_ref[pl.ds(p * b, b), :])

        lo, hi = (o, n) if transpose else (0, o + 1)
        acc = jax.lax.fori_loop(lo, hi, add_tile, jnp.zeros(o_ref.shape, jnp.float32))
        o_ref[...] = acc.astype(o_ref.dtype)

    return kernel


def _lag_blocks_kernel(b: int, n: int):
    """Program (h, d): ``C_d = Σ_{I ≥ d} g_I x_{I−d}ᵀ``, a (b, b) float32 matrix."""

    def kernel(g_ref, x_ref, c_ref):
        from jax.experimental import pallas as pl

        d = pl.program_id(1)

        def add_block(i, acc):
            g, x = g_ref[pl.ds(i * b, b), :], x_ref[pl.ds((i - d) * b, b), :]
            return acc + _dot(g, x, (((1,), (1,)), ((), ())))

        c_ref[...] = jax.lax.fori_loop(d, n, add_block, jnp.zeros((b, b), jnp.float32))

    return kernel


def _params(warps: int, stages: int):
    if _interpret():
        return None
    from jax.experimental.pallas import triton as pltriton

    return pltriton.CompilerParams(num_warps=warps, num_stages=stages)


def toeplitz_products(
    K: Array, x: Array, transpose: bool, b: int, warps: int = 4, stages: int = 2
) -> Array:
    """``y[h] = T_h x[h]`` (``T_hᵀ x[h]`` if ``transpose``) for ``x (H, Lp, Bp)``, ``K (H, L)``, L ≤ Lp."""
    from jax.experimental import pallas as pl

    H, Lp, Bp = x.shape
    n = Lp // b
    k_rows = jnp.pad(K.astype(jnp.bfloat16), ((0, 0), (Lp, Lp - K.shape[1])))  # (H, 2 Lp)
    return pl.pallas_call(
        _products_kernel(b, n, transpose),
        out_shape=jax.ShapeDtypeStruct((H, Lp, Bp), x.dtype),
        grid=(H, n),
        in_specs=[
            pl.BlockSpec((None, 2 * Lp), lambda h, o: (h, 0)),
            pl.BlockSpec((None, Lp, Bp), lambda h, o: (h, 0, 0)),
        ],
        out_specs=pl.BlockSpec((None, b, Bp), lambda h, o: (h, o, 0)),
        interpret=_interpret(),
        compiler_params=_params(warps, stages),
        name="toeplitz_products_t" if transpose else "toeplitz_products",
    )(k_rows, x)


def lag_blocks(g: Array, x: Array, b: int, warps: int = 4, stages: int = 2) -> Array:
    """``C (H, n, b, b)``: ``C[h, d] = Σ_{I ≥ d} g[h, I] x[h, I − d]ᵀ`` for ``g, x (H, n b, Bp)``."""
    from jax.experimental import pallas as pl

    H, Lp, Bp = x.shape
    n = Lp // b
    return pl.pallas_call(
        _lag_blocks_kernel(b, n),
        out_shape=jax.ShapeDtypeStruct((H, n, b, b), jnp.float32),
        grid=(H, n),
        in_specs=[pl.BlockSpec((None, Lp, Bp), lambda h, d: (h, 0, 0))] * 2,
        out_specs=pl.BlockSpec((None, None, b, b), lambda h, d: (h, d, 0, 0)),
        interpret=_interpret(),
        compiler_params=_params(warps, stages),
        name="toeplitz_lag_blocks",
    )(g, x)


def _to_hlb(u: Array, b: int) -> Array:
    """``(B, L, H)`` → bfloat16 ``(H, Lp, Bp)``, L padded to whole blocks, B to a power of two ≥ 16."""
    B, L, _ = u.shape
    Lp, Bp = -(-L // b) * b, max(16, 1 << (B - 1).bit_length())
    x = jnp.transpose(u.astype(jnp.bfloat16), (2, 1, 0))
    return jnp.pad(x, ((0, 0), (0, Lp - L), (0, Bp - B)))


def _from_hlb(x: Array, B: int, L: int, dtype) -> Array:
    return jnp.transpose(x[:, :L, :B], (2, 1, 0)).astype(dtype)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def toeplitz_conv_tiled(u: Array, K: Array, b: int = 64, warps: int = 4, stages: int = 2) -> Array:
    """``u (B, L, H)``, ``K (H, L)`` → ``y (B, L, H)``: :math:`y_I = \\sum_{J \\le I} T_{IJ} u_J`.

    ``b``: block length (a power of two ≥ 16); ``warps``, ``stages``: Triton's settings.
    """
    B, L, _ = u.shape
    y = toeplitz_products(K, _to_hlb(u, b), False, b, warps, stages)
    return _from_hlb(y, B, L, u.dtype)


def _tiled_fwd(u: Array, K: Array, b: int, warps: int, stages: int):
    x = _to_hlb(u, b)
    y = toeplitz_products(K, x, False, b, warps, stages)
    return _from_hlb(y, *u.shape[:2], u.dtype), (x, K)


def _tiled_bwd(b: int, warps: int, stages: int, res, dy: Array):
    x, K = res
    B, L, _ = dy.shape
    g = _to_hlb(dy, b)
    du = _from_hlb(toeplitz_products(K, g, True, b, warps, stages), B, L, dy.dtype)
    dK = lag_sums(lag_blocks(g, x, b, warps, stages))[:, :L]
    return du, dK.astype(K.dtype)


toeplitz_conv_tiled.defvjp(_tiled_fwd, _tiled_bwd)
