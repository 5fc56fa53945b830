r"""The convolution view: unrolled from a zero state, the recurrence is a convolution.

.. math::
    y_k = \sum_{j=0}^{k} \bar K_j u_{k-j}, \qquad
    \bar K = (C\bar B,\ C\bar A\bar B,\ \dots,\ C\bar A^{L-1}\bar B) \in \mathbb{R}^L
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


def _kernel_naive_args(Ab: Any, Bb: Any, C: Any, L: Any) -> tuple:
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    L = _check.length("L", L)
    dtype = jnp.result_type(Ab, Bb, C, float)
    return Ab.astype(dtype), Bb.astype(dtype), C.astype(dtype), L


@_check.checked(_kernel_naive_args)
@partial(jax.jit, static_argnums=3)  # compiled once per shape, dtype and L
def kernel_naive(Ab: Array, Bb: Array, C: Array, L: int) -> Array:
    r"""The SSM convolution kernel ``(L,)`` of ``Ab (N, N)``, ``Bb (N,)``, ``C (N,)``.

    .. math::
        \bar K_j = C \bar A^j \bar B, \qquad j = 0, \dots, L-1

    Computed the obvious way: L matrix-vector products, O(N² L) work. This is the
    reference every fast kernel is checked against.
    """

    def step(x, _):  # x = Ā^j B̄
        return Ab @ x, C @ x

    _, K = jax.lax.scan(step, Bb, None, length=L)
    return K


def _causal_conv_args(u: Any, K: Any) -> tuple[Array, Array]:
    u = _check.vector("u", u, what="L")
    if u.shape[0] < 1:
        raise ValueError("u: expected at least one sample, got an empty vector")
    return u, _check.vector("K", K, u.shape[0], what="L (the length of u)")


@_check.checked(_causal_conv_args)
def causal_conv(u: Array, K: Array) -> Array:
    r"""Causal convolution by FFT, shape ``(L,)``, from ``u (L,)`` and ``K (L,)``.

    .. math::
        y_k = \sum_{j \le k} K_j u_{k-j}

    Both signals are zero-padded to length 2L before the FFT, so the circular
    convolution the FFT computes has no wrap-around: O(L log L) instead of O(L²).
    Complex ``K`` or ``u`` are allowed (then the complex FFT is used, else the real
    one).
    """
    L = u.shape[0]
    n = 2 * L
    if jnp.iscomplexobj(u) or jnp.iscomplexobj(K):
        y = jnp.fft.ifft(jnp.fft.fft(u, n) * jnp.fft.fft(K, n))
    else:
        y = jnp.fft.irfft(jnp.fft.rfft(u, n) * jnp.fft.rfft(K, n), n)
    return y[:L]
