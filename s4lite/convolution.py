r"""The convolution view: unroll the recurrence (from a zero state) into a causal convolution.

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


def kernel_naive(Ab: Any, Bb: Any, C: Any, L: int) -> Array:
    r"""The SSM convolution kernel :math:`\bar K_j = C \bar A^j \bar B`, ``j = 0 … L-1``, shape ``(L,)``.

    Computed the obvious way: L matrix-vector products, O(N² L) work. This is the reference every
    fast kernel is checked against.
    """
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    L = _check.length("L", L)
    dtype = jnp.result_type(Ab, Bb, C, float)
    return _kernel_naive(Ab.astype(dtype), Bb.astype(dtype), C.astype(dtype), L)


@partial(jax.jit, static_argnums=3)
def _kernel_naive(Ab: Array, Bb: Array, C: Array, L: int) -> Array:
    # Compiled once per shape, dtype and L: calling kernel_naive again does not retrace.
    def step(x, _):
        return Ab @ x, C @ x

    _, K = jax.lax.scan(step, Bb, None, length=L)
    return K


def causal_conv(u: Any, K: Any) -> Array:
    r"""Causal convolution :math:`y_k = \sum_{j \le k} K_j u_{k-j}` by FFT, shape ``(L,)``.

    Both signals are zero-padded to length 2L before the FFT, so the circular convolution the FFT
    computes has no wrap-around: O(L log L) instead of O(L²). Complex ``K`` or ``u`` are allowed.
    """
    u = _check.vector("u", u, what="L")
    if u.shape[0] < 1:
        raise ValueError("u: expected at least one sample, got an empty vector")
    K = _check.vector("K", K, u.shape[0], what="L (the length of u)")
    L = u.shape[0]
    n = 2 * L
    if jnp.iscomplexobj(u) or jnp.iscomplexobj(K):
        y = jnp.fft.ifft(jnp.fft.fft(u, n) * jnp.fft.fft(K, n))
    else:
        y = jnp.fft.irfft(jnp.fft.rfft(u, n) * jnp.fft.rfft(K, n), n)
    return y[:L]
