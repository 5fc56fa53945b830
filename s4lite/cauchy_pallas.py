r"""A fused Cauchy kernel for the S4 layer, written with Pallas (Triton on a GPU).

The layer's kernel needs, for every channel h and every frequency m,

.. math::
    k_{hjm} = \sum_{n<N/2} \frac{v_{hjn}}{i t_m - w_{hn}} + \frac{\bar v_{hjn}}{i t_m - \bar w_{hn}},
    \qquad t_m = \operatorname{Im}\frac{1-\omega_m}{1+\omega_m} = \tan\frac{\pi m}{L},\quad m = 0 … L/2,

J vectors at a time (J = 4 for the rank-1 Woodbury terms). The XLA version
(:func:`s4lite.cauchy.cauchy_conj_imag`) writes four real ``(H, M, N/2)`` matrices to memory and
multiplies them; for H = 256, N = 64, L = 16384 that is 1 GB, and the time goes into moving it.

Here one *program* owns one channel and a block of ``block_m`` frequencies: it loads the N/2 poles
and the J vectors (a few hundred bytes), forms the ``(block_m, N/2)`` reciprocals in registers,
reduces over n and writes only ``k``. Nothing of size H·M·N ever reaches memory, in the forward or
the backward pass.

**Nodes are fixed.** The S4 nodes are :math:`g(\omega) = \tfrac{2}{\Delta}\, i t_m`, and
:math:`\frac{1}{g - \lambda} = \frac{\Delta}{2}\,\frac{1}{i t_m - \lambda\Delta/2}`: scaling the
poles by Δ/2 leaves nodes that depend only on L. So the step Δ enters through the poles
:math:`w = \lambda\Delta/2`, and the hand-written backward pass only needs gradients with respect
to v and w (the nodes are constants of L, not inputs).

**Backward.** With cotangent :math:`g = g^{re} + i g^{im}` on k (real loss, :math:`r_1 = 1/(it-w)`,
:math:`r_2 = 1/(it-\bar w)`):

.. math::
    \nabla_{v_{jn}} = \sum_m \bar r_1 g_{jm} + r_2 \bar g_{jm}, \qquad
    \nabla_{w_n} = \sum_m \overline{r_1^2}\sum_j \bar v_{jn} g_{jm} + r_2^2 \sum_j \bar v_{jn}\bar g_{jm}

(for a complex parameter x, :math:`\nabla_x = \partial\ell/\partial x^{re} + i\,\partial\ell/\partial x^{im}`).
A program reduces over its own block of m and writes one partial sum per block; XLA adds the
``M / block_m`` partial sums. All of it is real arithmetic (Triton has no complex numbers).

On a CPU (no Triton) the same kernels run in Pallas's interpreter: that is how the tests check them
against :func:`s4lite.cauchy.cauchy_conj_imag` and its automatic gradient.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import _check
from .kernel import half_spectrum_roots

Array = jax.Array

DEFAULT_BLOCK_M = 64


def unit_circle_nodes(L: int, dtype=jnp.float32) -> Array:
    r"""The nodes :math:`t_m = \operatorname{Im}\frac{1-\omega_m}{1+\omega_m}` for :math:`\omega_m = e^{-2\pi i m/L}`, ``m = 0 … L//2``.

    Computed from ω exactly as the layer computes its nodes (so the Nyquist node, where
    :math:`1 + \omega = 0` in exact arithmetic, is the same large finite number).
    """
    omega = half_spectrum_roots(L, dtype)
    return jnp.imag((1.0 - omega) / (1.0 + omega)).astype(dtype)


def padded_sizes(n: int, L: int, block_m: int) -> tuple[int, int]:
    """What the kernels work on: ``(n_p, M_p)``, n poles rounded up to a power of two and the
    ``L//2 + 1`` frequencies rounded up to whole blocks of ``block_m``."""
    M = L // 2 + 1
    return 1 << max(0, (n - 1).bit_length()), -(-M // block_m) * block_m


def _interpret() -> bool:
    return jax.default_backend() != "gpu"


def _compiler_params():
    if _interpret():
        return None
    from jax.experimental.pallas import triton as pltriton

    return pltriton.CompilerParams(num_warps=4, num_stages=1)


def _tiles(t_ref, a_ref, b_ref):
    """The four real ``(block_m, n)`` matrices of one program.

    Re and Im of r1 = 1/(it − w) and r2 = 1/(it − w̄).
    """
    y = t_ref[...][:, None]
    a = a_ref[...][None, :]
    b = b_ref[...][None, :]
    u1 = y - b
    u2 = y + b
    a2 = a * a
    d1 = 1.0 / (a2 + u1 * u1)
    d2 = 1.0 / (a2 + u2 * u2)
    return -a * d1, -u1 * d1, -a * d2, -u2 * d2  # x1, y1, x2, y2


def _forward_kernel(J: int):
    def kernel(*refs):
        t_ref, a_ref, b_ref = refs[:3]
        vr, vi = refs[3 : 3 + J], refs[3 + J : 3 + 2 * J]
        kr, ki = refs[3 + 2 * J : 3 + 3 * J], refs[3 + 3 * J :]
        x1, y1, x2, y2 = _tiles(t_ref, a_ref, b_ref)
        alpha, beta, gamma, delta = x1 + x2, y2 - y1, y1 + y2, x1 - x2
        for j in range(J):
            p = vr[j][...][None, :]
            q = vi[j][...][None, :]
            kr[j][...] = jnp.sum(alpha * p + beta * q, axis=1)
            ki[j][...] = jnp.sum(gamma * p + delta * q, axis=1)

    return kernel


def _backward_kernel(J: int):
    def kernel(*refs):
        t_ref, a_ref, b_ref = refs[:3]
        vr, vi = refs[3 : 3 + J], refs[3 + J : 3 + 2 * J]
        gr, gi = refs[3 + 2 * J : 3 + 3 * J], refs[3 + 3 * J : 3 + 4 * J]
        dvr, dvi = refs[3 + 4 * J : 3 + 5 * J], refs[3 + 5 * J : 3 + 6 * J]
        da_ref, db_ref = refs[3 + 6 * J :]
        x1, y1, x2, y2 = _tiles(t_ref, a_ref, b_ref)
        alpha, beta, gamma, delta = x1 + x2, y2 - y1, y1 + y2, x1 - x2
        Ar = Ai = Wr = Wi = (
            None  # Σ_j conj(v_j) g_j = A,  Σ_j v_j g_j = W   (block_m, n)
        )
        for j in range(J):
            g_re = gr[j][...][:, None]
            g_im = gi[j][...][:, None]
            p = vr[j][...][None, :]
            q = vi[j][...][None, :]
            dvr[j][...] = jnp.sum(alpha * g_re + gamma * g_im, axis=0)
            dvi[j][...] = jnp.sum(beta * g_re + delta * g_im, axis=0)
            X, Y, Z, T = p * g_re, q * g_im, p * g_im, q * g_re
            terms = (X + Y, Z - T, X - Y, Z + T)
            if Ar is None:
                Ar, Ai, Wr, Wi = terms
            else:
                Ar, Ai, Wr, Wi = (
                    Ar + terms[0],
                    Ai + terms[1],
                    Wr + terms[2],
                    Wi + terms[3],
                )
        s1, c1 = x1 * x1 - y1 * y1, 2.0 * x1 * y1  # r1² = s1 + i c1
        s2, c2 = x2 * x2 - y2 * y2, 2.0 * x2 * y2  # r2² = s2 + i c2
        # ∇w = Σ_m conj(r1²) A + r2² conj(W)
        da_ref[...] = jnp.sum(s1 * Ar + c1 * Ai + s2 * Wr + c2 * Wi, axis=0)
        db_ref[...] = jnp.sum(s1 * Ai - c1 * Ar - s2 * Wi + c2 * Wr, axis=0)

    return kernel


def _specs(n: int, block_m: int):
    from jax.experimental import pallas as pl

    node = pl.BlockSpec((block_m,), lambda h, i: (i,))
    pole = pl.BlockSpec((None, n), lambda h, i: (h, 0))
    freq = pl.BlockSpec((None, block_m), lambda h, i: (h, i))
    part = pl.BlockSpec((None, None, n), lambda h, i: (h, i, 0))
    return node, pole, freq, part


def _cauchy_forward(
    t: Array, a: Array, b: Array, vr: tuple, vi: tuple, block_m: int
) -> tuple[tuple, tuple]:
    from jax.experimental import pallas as pl

    J, (H, n), Mp = len(vr), a.shape, t.shape[0]
    node, pole, freq, _ = _specs(n, block_m)
    out = jax.ShapeDtypeStruct((H, Mp), a.dtype)
    res = pl.pallas_call(
        _forward_kernel(J),
        out_shape=[out] * (2 * J),
        grid=(H, Mp // block_m),
        in_specs=[node, pole, pole] + [pole] * (2 * J),
        out_specs=[freq] * (2 * J),
        interpret=_interpret(),
        compiler_params=_compiler_params(),
        name="s4_cauchy_fwd",
    )(t, a, b, *vr, *vi)
    return tuple(res[:J]), tuple(res[J:])


def _cauchy_backward(t, a, b, vr, vi, gr, gi, block_m: int):
    from jax.experimental import pallas as pl

    J, (H, n), Mp = len(vr), a.shape, t.shape[0]
    nblk = Mp // block_m
    node, pole, freq, part = _specs(n, block_m)
    out = jax.ShapeDtypeStruct((H, nblk, n), a.dtype)
    res = pl.pallas_call(
        _backward_kernel(J),
        out_shape=[out] * (2 * J + 2),
        grid=(H, nblk),
        in_specs=[node, pole, pole] + [pole] * (2 * J) + [freq] * (2 * J),
        out_specs=[part] * (2 * J + 2),
        interpret=_interpret(),
        compiler_params=_compiler_params(),
        name="s4_cauchy_bwd",
    )(t, a, b, *vr, *vi, *gr, *gi)
    res = [jnp.sum(r, axis=1) for r in res]  # add the per-block partial sums
    return tuple(res[:J]), tuple(res[J : 2 * J]), res[2 * J], res[2 * J + 1]


@partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def _cauchy_real(
    L: int, a: Array, b: Array, vr: tuple, vi: tuple, block_m: int
) -> tuple[tuple, tuple]:
    t = _padded_nodes(L, a.dtype, block_m)
    return _cauchy_forward(t, a, b, vr, vi, block_m)


def _padded_nodes(L: int, dtype, block_m: int) -> Array:
    _, Mp = padded_sizes(1, L, block_m)
    return jnp.pad(
        unit_circle_nodes(L, dtype), (0, Mp - (L // 2 + 1))
    )  # padded nodes t = 0: finite, sliced off


def _cauchy_real_fwd(L, a, b, vr, vi, block_m):
    return _cauchy_real(L, a, b, vr, vi, block_m), (a, b, vr, vi)


def _cauchy_real_bwd(L, block_m, res, cot):
    a, b, vr, vi = res
    gr, gi = cot
    t = _padded_nodes(L, a.dtype, block_m)
    dvr, dvi, da, db = _cauchy_backward(t, a, b, vr, vi, tuple(gr), tuple(gi), block_m)
    return da, db, dvr, dvi


_cauchy_real.defvjp(_cauchy_real_fwd, _cauchy_real_bwd)


def _cauchy_unit_circle_args(
    v: Array, w: Array, L: int, block_m: int = DEFAULT_BLOCK_M
) -> tuple:
    v, w = jnp.asarray(v), jnp.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w: expected shape (H, n), got {w.shape}")
    H, n = w.shape
    if v.ndim != 3 or v.shape[0] != H or v.shape[2] != n:
        raise ValueError(
            f"v: expected shape (H, J, n) = ({H}, J, {n}) to match w, got {v.shape}"
        )
    if block_m < 1 or block_m & (block_m - 1):
        raise ValueError(f"block_m: expected a power of two, got {block_m}")
    L = int(L)
    if L < 2:
        raise ValueError(f"L: expected a length >= 2, got {L}")
    return v, w, L, block_m


@_check.checked(_cauchy_unit_circle_args)
def cauchy_unit_circle(
    v: Array, w: Array, L: int, block_m: int = DEFAULT_BLOCK_M
) -> Array:
    r"""Fused conjugate-pair Cauchy kernel at the nodes :math:`i t_m`.

    .. math::
        k_{hjm} = \sum_n \frac{v_{hjn}}{i t_m - w_{hn}}
                + \frac{\bar v_{hjn}}{i t_m - \bar w_{hn}}

    ``v (H, J, n)`` complex, ``w (H, n)`` complex with ``Re w < 0``
    → ``(H, J, L//2 + 1)`` complex; the nodes are :func:`unit_circle_nodes`. Equals
    ``cauchy_conj_imag(v[h], 1j * unit_circle_nodes(L), w[h])`` for every h.
    Differentiable in ``v`` and ``w`` (hand-written backward pass, also fused). ``n`` is
    padded to a power of two with inert poles (w = −1, v = 0), the frequencies to a
    multiple of ``block_m`` (a power of two).
    """
    n, real = w.shape[1], jnp.real(w).dtype
    npad = padded_sizes(n, L, block_m)[0] - n
    a = jnp.pad(jnp.real(w), ((0, 0), (0, npad)), constant_values=-1.0)
    b = jnp.pad(jnp.imag(w), ((0, 0), (0, npad)))
    vp = jnp.pad(v, ((0, 0), (0, 0), (0, npad)))
    vr = tuple(jnp.real(vp[:, j]).astype(real) for j in range(v.shape[1]))
    vi = tuple(jnp.imag(vp[:, j]).astype(real) for j in range(v.shape[1]))
    kr, ki = _cauchy_real(L, a, b, vr, vi, block_m)
    M = L // 2 + 1
    return jax.lax.complex(
        jnp.stack(kr, axis=1)[..., :M], jnp.stack(ki, axis=1)[..., :M]
    )


def kernel_dplr_conj_fused(
    Lambda: Array,
    P: Array,
    B: Array,
    Ct: Array,
    step: Array,
    L: int,
    block_m: int = DEFAULT_BLOCK_M,
) -> Array:
    r"""The H kernels of an S4 layer with the fused Cauchy kernel: real ``(H, L)``.

    Same result as ``vmap(kernel_dplr_conj)`` (Theorem 3, conjugate symmetry, L/2+1
    frequencies),
    computed as

    .. math::
        \hat K(\omega) = \frac{2}{1+\omega}\cdot\frac{\Delta}{2}\Big[k'_{00}
            - \frac{\Delta}{2}\,
              \frac{k'_{01}k'_{10}}{1 + \tfrac{\Delta}{2}k'_{11}}\Big],
        \quad k'_{ij} = \text{Cauchy}(v_{ij}, w = \Lambda\Delta/2)

    with :math:`v_{00} = \tilde C B,\ v_{01} = \tilde C P,`
    :math:`v_{10} = \bar P B,\ v_{11} = \bar P P`
    (rank 1, Q = P). Shapes: ``Lambda, P, B, Ct (H, N/2)`` complex, ``step (H,)``.
    """
    half = step[:, None] / 2.0  # (H, 1)
    w = Lambda * half
    v = jnp.stack(
        [Ct * B, Ct * P, jnp.conj(P) * B, jnp.conj(P) * P], axis=1
    )  # (H, 4, N/2)
    k = cauchy_unit_circle(v, w, L, block_m)  # (H, 4, M)
    k00, k01, k10, k11 = k[:, 0], k[:, 1], k[:, 2], k[:, 3]
    core = half * (k00 - half * k01 * k10 / (1.0 + half * k11))
    omega = half_spectrum_roots(L, jnp.real(Lambda).dtype)
    Khat = 2.0 / (1.0 + omega) * core
    return jnp.fft.irfft(Khat, n=L)


__all__ = [
    "unit_circle_nodes",
    "padded_sizes",
    "cauchy_unit_circle",
    "kernel_dplr_conj_fused",
    "DEFAULT_BLOCK_M",
]
