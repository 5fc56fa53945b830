r"""The Cauchy kernel, the one primitive the fast S4 kernel reduces to.

.. math::
    k(z_j) = \sum_{i=0}^{N-1} \frac{v_i}{z_j - w_i}, \qquad j = 0, \dots, M-1

Computed directly, every implementation here does O(M·N) work (M nodes × N poles) per
vector ``v``; they differ in what they keep in memory:

* :func:`cauchy_naive` — broadcasting, materializes the full ``(..., M, N)`` array (the
  reference);
* :func:`cauchy` — forms the ``(M, N)`` matrix of reciprocals once and contracts it with
  every vector ``v`` by a matrix product, so a batch of vectors never materializes
  ``(batch, M, N)``;
* :func:`cauchy_conj` — for conjugate-pair-closed ``(v, w)`` stores only one of each
  pair (N/2 numbers) and adds the partner analytically;
* :func:`cauchy_conj_fused` and :func:`cauchy_conj_imag` — the same sums arranged for
  fusion and for purely imaginary nodes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


def _cauchy_args(v: Any, z: Any, w: Any) -> tuple[Array, Array, Array]:
    w = _check.vector("w", w)
    v = _check.as_array("v", v)
    if v.ndim < 1 or v.shape[-1] != w.shape[0]:
        n = w.shape[0]
        raise ValueError(
            f"v: expected shape (..., N) with N={n} (the length of w), got {v.shape}"
        )
    z = _check.vector("z", z, what="M")
    return v, z, w


@_check.checked(_cauchy_args)
def cauchy_naive(v: Array, z: Array, w: Array) -> Array:
    r"""Reference Cauchy kernel: ``v (..., N)``, ``z (M,)``, ``w (N,)`` → ``(..., M)``.

    .. math::
        k_j = \sum_i \frac{v_i}{z_j - w_i}
    """
    return jnp.sum(v[..., None, :] / (z[:, None] - w[None, :]), axis=-1)


@_check.checked(_cauchy_args)
def cauchy(v: Array, z: Array, w: Array) -> Array:
    r"""Same as :func:`cauchy_naive`: one ``(M, N)`` reciprocal matrix times every
    ``v``.

    .. math::
        k = v\,R^\top, \qquad R_{ji} = \frac{1}{z_j - w_i}
    """
    recip = 1.0 / (z[:, None] - w[None, :])  # (M, N), shared by all vectors v
    return jnp.einsum("...n,mn->...m", v, recip)


@_check.checked(_cauchy_args)
def cauchy_conj(v: Array, z: Array, w: Array) -> Array:
    r"""Cauchy kernel over conjugate pairs, given one member of each pair.

    .. math::
        k_j = \sum_{i<N/2} \frac{v_i}{z_j - w_i} + \frac{\bar v_i}{z_j - \bar w_i}

    ``v (..., N/2)``, ``z (M,)``, ``w (N/2,)`` → ``(..., M)``. Equals
    :func:`cauchy_naive` on the full arrays ``concat(v, conj v)`` and
    ``concat(w, conj w)``.
    """
    recip = 1.0 / (z[:, None] - w[None, :])
    recip_c = 1.0 / (z[:, None] - jnp.conj(w)[None, :])
    terms = jnp.einsum("...n,mn->...m", v, recip)
    return terms + jnp.einsum("...n,mn->...m", jnp.conj(v), recip_c)


@_check.checked(_cauchy_args)
@jax.checkpoint  # the backward pass recomputes the terms instead of storing them
def cauchy_conj_fused(v: Array, z: Array, w: Array) -> Array:
    r"""Same as :func:`cauchy_conj`, written so the compiler can fuse it into one pass.

    Each conjugate pair is one fraction (one complex division instead of two),

    .. math::
        \frac{v}{z-w} + \frac{\bar v}{z-\bar w}
        = \frac{2\,(\operatorname{Re}(v)\, z - \operatorname{Re}(v\bar w))}
               {z^2 - 2\operatorname{Re}(w)\, z + |w|^2},

    and the terms are summed where they are made: the broadcast ``(..., M, N/2)`` array
    exists only inside a fused reduction, never in memory. Shapes as
    :func:`cauchy_conj`.
    """
    zz = z[:, None]
    re_v, re_vw = jnp.real(v)[..., None, :], jnp.real(v * jnp.conj(w))[..., None, :]
    num = 2.0 * (re_v * zz - re_vw)
    den = zz * zz - 2.0 * jnp.real(w) * zz + jnp.abs(w) ** 2
    return jnp.sum(num / den, axis=-1)


@_check.checked(_cauchy_args)
def cauchy_conj_imag(v: Array, z: Array, w: Array) -> Array:
    r""":func:`cauchy_conj` for imaginary nodes :math:`z = iy`, in real arithmetic.

    S4's nodes are purely imaginary: for :math:`\omega = e^{-i\theta}` on the unit
    circle,
    :math:`g(\omega) = \tfrac{2}{\Delta}\tfrac{1-\omega}{1+\omega}
    = \tfrac{2i}{\Delta}\tan\tfrac{\theta}{2}`. With :math:`w = a + ib`,

    .. math::
        \frac{1}{iy - w} = \frac{-a - i(y-b)}{a^2 + (y-b)^2}, \qquad
        \frac{1}{iy - \bar w} = \frac{-a - i(y+b)}{a^2 + (y+b)^2},

    so a conjugate pair needs two real reciprocals, and the sum is four real
    ``(M, N/2)`` matrices applied to :math:`\operatorname{Re} v` and
    :math:`\operatorname{Im} v` by matrix products. Only ``Im z`` is used (the real
    part, zero in exact arithmetic, is ignored). Shapes as :func:`cauchy_conj`.
    """
    y = jnp.imag(z)[:, None]
    a, b = jnp.real(w)[None, :], jnp.imag(w)[None, :]
    d1 = 1.0 / (a * a + (y - b) ** 2)
    d2 = 1.0 / (a * a + (y + b) ** 2)
    alpha = -a * (d1 + d2)
    beta = (y - b) * d1 - (y + b) * d2
    gamma = -((y - b) * d1 + (y + b) * d2)
    delta = a * (d2 - d1)
    p, q = jnp.real(v), jnp.imag(v)
    mm = lambda x, M: jnp.einsum("...n,mn->...m", x, M)  # noqa: E731
    return jax.lax.complex(mm(p, alpha) + mm(q, beta), mm(p, gamma) + mm(q, delta))
