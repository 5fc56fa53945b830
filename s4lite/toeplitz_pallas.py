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

The kernels read and write ``(H, B, L)`` arrays (channels first): the steps of one channel's
sequences are contiguous rows, so a program's loads are whole rows. :func:`toeplitz_conv_tiled_cf`
takes that layout (the model's blocks use it where this convolution is chosen, see
:class:`s4lite.model.Backend`: then the GLU's products are plain matrix products too, and no
transposes are needed between the parts of a block); :func:`toeplitz_conv_tiled` takes
``(B, L, H)`` like every other convolution here and transposes around the same kernels.

The last block of a sequence may be partial: loads beyond L read zeros and stores beyond L are
masked (a causal convolution ignores what comes after). A program takes up to
:data:`BATCH_BLOCK` sequences; B is padded with zero sequences to a power of two ≥ 16 below
that, to a multiple of it above. On a CPU the same kernels run in Pallas's interpreter; that is
how the tests check them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from . import _check
from .fast_conv import lag_sums

Array = jax.Array

#: Block length and Triton settings the training step uses (chosen from a sweep on an H200:
#: ``artifacts/bench/conv_tiles_gpu_*.json`` and the step timings beside them).
TILES = {"b": 64, "warps": 4, "stages": 2}


def _interpret() -> bool:
    return jax.default_backend() != "gpu"


def _dot(a: Array, b: Array, dims=(((1,), (0,)), ((), ()))) -> Array:
    """bfloat16 × bfloat16 with float32 sums (in float32 on a CPU, which has no such product)."""
    if _interpret():
        a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _start(t0: Array) -> Array:
    """A block's first step as the default integer type (the type of the ``:`` next to it)."""
    return jnp.asarray(t0, jnp.asarray(0).dtype)


def _steps(ref, t0, b: int, L: int) -> Array:
    """Steps ``t0 … t0 + b − 1`` of every row of ``ref (rows, L)``, zeros past L: ``(rows, b)``."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    t = t0 + jax.lax.broadcasted_iota(jnp.int32, (ref.shape[0], b), 1)
    return plgpu.load(ref.at[:, pl.ds(_start(t0), b)], mask=t < L, other=0)


def _products_kernel(b: int, L: int, transpose: bool):
    """Program (h, o): block o of ``y = x T_hᵀ`` (of ``x T_h`` if ``transpose``),
    summed over the tiles on or below the diagonal. Row β of ``x (rows, L)`` is one
    sequence: ``y[β, i] = Σ_j K[i − j] x[β, j]``.

    ``k_ref`` is K's row with n b zeros in front: entry n b + m is the lag m
    (zero for m < 0).
    """
    n = -(-L // b)

    def kernel(k_ref, x_ref, o_ref):
        from jax.experimental import pallas as pl
        from jax.experimental.pallas import triton as plgpu

        o = pl.program_id(1)
        c = jax.lax.broadcasted_iota(jnp.int32, (b, b), 0)  # step in block p
        r = jax.lax.broadcasted_iota(jnp.int32, (b, b), 1)  # step in block o

        def add_tile(p, acc):
            lag = (p - o) * b + c - r if transpose else (o - p) * b + r - c
            tile = k_ref[n * b + lag]  # (b, b): T_opᵀ, or T_po
            return acc + _dot(_steps(x_ref, p * b, b, L), tile)

        lo, hi = (o, n) if transpose else (0, o + 1)
        zeros = jnp.zeros((x_ref.shape[0], b), jnp.float32)
        acc = jax.lax.fori_loop(lo, hi, add_tile, zeros)
        t = o * b + jax.lax.broadcasted_iota(jnp.int32, acc.shape, 1)
        out = o_ref.at[:, pl.ds(_start(o * b), b)]
        plgpu.store(out, acc.astype(o_ref.dtype), mask=t < L)

    return kernel


def _lag_blocks_kernel(b: int, L: int):
    """Program (h, d): ``C_d = Σ_{I ≥ d} g_Iᵀ x_{I−d}``, a (b, b) float32 matrix;
    block I of ``g, x (rows, L)`` is their columns I b … I b + b − 1."""
    n = -(-L // b)

    def kernel(g_ref, x_ref, c_ref):
        from jax.experimental import pallas as pl

        d = pl.program_id(1)

        def add_block(i, acc):
            g, x = _steps(g_ref, i * b, b, L), _steps(x_ref, (i - d) * b, b, L)
            return acc + _dot(g, x, (((0,), (0,)), ((), ())))

        zeros = jnp.zeros((b, b), jnp.float32)
        c_ref[...] = jax.lax.fori_loop(d, n, add_block, zeros)

    return kernel


def _params(warps: int, stages: int):
    if _interpret():
        return None
    from jax.experimental.pallas import triton as pltriton

    return pltriton.CompilerParams(num_warps=warps, num_stages=stages)


def _grid(x: Array, b: int) -> tuple:
    """The grid (channel, block of b steps, block of sequences) over ``x (H, Bp, L)`` and the
    ``BlockSpec`` of a program's rows: all L steps of its channel's block of sequences."""
    from jax.experimental import pallas as pl

    H, Bp, L = x.shape
    nb = Bp // _batch_block(Bp)
    rows = pl.BlockSpec((None, Bp // nb, L), lambda h, o, i: (h, i, 0))
    return (H, -(-L // b), nb), rows


def toeplitz_products(
    K: Array, x: Array, transpose: bool, b: int, warps: int = 4, stages: int = 2
) -> Array:
    """``y[h] = x[h] T_hᵀ`` (``x[h] T_h`` if ``transpose``) for ``x (H, Bp, L)``, ``K (H, L)``."""
    from jax.experimental import pallas as pl

    H, _, L = x.shape
    grid, rows = _grid(x, b)
    n = grid[1]
    k_rows = jnp.pad(K.astype(jnp.bfloat16), ((0, 0), (n * b, n * b - L)))  # (H, 2 n b)
    return pl.pallas_call(
        _products_kernel(b, L, transpose),
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=grid,
        in_specs=[pl.BlockSpec((None, 2 * n * b), lambda h, o, i: (h, 0)), rows],
        out_specs=rows,
        interpret=_interpret(),
        compiler_params=_params(warps, stages),
        name="toeplitz_products_t" if transpose else "toeplitz_products",
    )(k_rows, x)


def lag_blocks(g: Array, x: Array, b: int, warps: int = 4, stages: int = 2) -> Array:
    """``C (H, n, b, b)``: ``C[h, d] = Σ_{I ≥ d} g_Iᵀ x_{I−d}`` for ``g, x (H, Bp, L)``, n = ⌈L / b⌉.

    Each block of sequences gives its own sums; they are added at the end.
    """
    from jax.experimental import pallas as pl

    H, _, L = x.shape
    grid, rows = _grid(x, b)
    n, nb = grid[1:]
    C = pl.pallas_call(
        _lag_blocks_kernel(b, L),
        out_shape=jax.ShapeDtypeStruct((nb, H, n, b, b), jnp.float32),
        grid=grid,
        in_specs=[rows, rows],
        out_specs=pl.BlockSpec((None, None, None, b, b), lambda h, d, i: (i, h, d, 0, 0)),
        interpret=_interpret(),
        compiler_params=_params(warps, stages),
        name="toeplitz_lag_blocks",
    )(g, x)
    return jnp.sum(C, axis=0)


#: Sequences per program: a program's accumulator holds this many rows of b steps.
BATCH_BLOCK = 128


def _batch_block(Bp: int) -> int:
    return min(Bp, BATCH_BLOCK)


def _padded_batch(u: Array) -> Array:
    """bfloat16 ``(H, Bp, L)``: B padded with zero rows to a power of two ≥ 16 if it is below
    :data:`BATCH_BLOCK`, else to a multiple of it."""
    B = u.shape[1]
    if B <= BATCH_BLOCK:
        Bp = max(16, 1 << (B - 1).bit_length())
    else:
        Bp = -(-B // BATCH_BLOCK) * BATCH_BLOCK
    return jnp.pad(u.astype(jnp.bfloat16), ((0, 0), (0, Bp - B), (0, 0)))


def _check_tiles(b: Any, warps: Any, stages: Any) -> None:
    def power_of_two(x: Any) -> bool:
        return isinstance(x, int) and x >= 1 and x & (x - 1) == 0

    if not (power_of_two(b) and b >= 16):
        raise ValueError(f"b: expected a block length that is a power of two >= 16, got {b!r}")
    if not power_of_two(warps):
        raise ValueError(f"warps: expected a power of two (Triton's warps per program), got {warps!r}")
    if not (isinstance(stages, int) and stages >= 1):
        raise ValueError(f"stages: expected an integer >= 1, got {stages!r}")


def _checked_tiles(u: Any, K: Any, b: Any, warps: Any, stages: Any, channels_first: bool) -> tuple:
    u, K = _check.as_array("u", u), _check.as_array("K", K)
    layout = "(H, B, L)" if channels_first else "(B, L, H)"
    if u.ndim != 3:
        raise ValueError(f"u: expected shape {layout}, got {u.shape}")
    H, L = (u.shape[0], u.shape[2]) if channels_first else (u.shape[2], u.shape[1])
    if K.shape != (H, L):
        raise ValueError(f"K: expected shape (H, L) = {(H, L)} for u {layout}, got {K.shape}")
    _check_tiles(b, warps, stages)
    return u, K, b, warps, stages


def _tiled_cf_args(u: Any, K: Any, b: int = 64, warps: int = 4, stages: int = 2) -> tuple:
    return _checked_tiles(u, K, b, warps, stages, channels_first=True)


def _tiled_args(u: Any, K: Any, b: int = 64, warps: int = 4, stages: int = 2) -> tuple:
    return _checked_tiles(u, K, b, warps, stages, channels_first=False)


def _forward(u: Array, K: Array, b: int, warps: int, stages: int) -> tuple[Array, Array]:
    """``y (H, B, L)`` and the padded bfloat16 input the backward pass keeps."""
    x = _padded_batch(u)
    y = toeplitz_products(K, x, False, b, warps, stages)
    return y[:, : u.shape[1]].astype(u.dtype), x


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _tiled_cf(u: Array, K: Array, b: int, warps: int, stages: int) -> Array:
    return _forward(u, K, b, warps, stages)[0]


def _tiled_fwd(u: Array, K: Array, b: int, warps: int, stages: int):
    y, x = _forward(u, K, b, warps, stages)
    return y, (x, K)


def _tiled_bwd(b: int, warps: int, stages: int, res, dy: Array):
    x, K = res
    g = _padded_batch(dy)
    du = toeplitz_products(K, g, True, b, warps, stages)[:, : dy.shape[1]].astype(dy.dtype)
    dK = lag_sums(lag_blocks(g, x, b, warps, stages))[:, : K.shape[1]]
    return du, dK.astype(K.dtype)


_tiled_cf.defvjp(_tiled_fwd, _tiled_bwd)


@_check.checked(_tiled_cf_args)
def toeplitz_conv_tiled_cf(
    u: Array, K: Array, b: int = 64, warps: int = 4, stages: int = 2
) -> Array:
    """``u (H, B, L)``, ``K (H, L)`` → ``y (H, B, L)``: :math:`y_I = \\sum_{J \\le I} T_{IJ} u_J`.

    ``b``: block length (a power of two ≥ 16); ``warps``, ``stages``: Triton's settings.
    The backward pass: the transposed products and the lag blocks (custom VJP).
    """
    return _tiled_cf(u, K, b, warps, stages)


@_check.checked(_tiled_args)
def toeplitz_conv_tiled(u: Array, K: Array, b: int = 64, warps: int = 4, stages: int = 2) -> Array:
    """:func:`toeplitz_conv_tiled_cf` for ``u (B, L, H)``: transposed to ``(H, B, L)`` and back."""
    y = _tiled_cf(jnp.transpose(u, (2, 0, 1)), K, b, warps, stages)
    return jnp.transpose(y, (1, 2, 0))
