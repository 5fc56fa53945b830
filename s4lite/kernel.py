r"""Theorem 3: the S4 convolution kernel of a DPLR SSM in O(N + L) Cauchy work, in three steps.

For :math:`A = \operatorname{diag}\Lambda - P Q^*` (``P, Q`` of shape ``(N,)`` or ``(r, N)``),
bilinear step Δ, and length L:

1. **Truncated generating function at the roots of unity.** With :math:`\omega_k = e^{-2\pi i k/L}`,
   :math:`\hat K(\omega_k) = \sum_{j<L} \bar K_j \omega_k^j = \tilde C (I - \bar A \omega_k)^{-1} \bar B`
   where :math:`\tilde C = C (I - \bar A^L)`, and :math:`\bar K = \text{IFFT}(\hat K)`.
2. **Bilinear + Woodbury.** :math:`\tilde C (I - \bar A\omega)^{-1}\bar B =
   \frac{2}{1+\omega}\,\tilde C\, (g(\omega) - A)^{-1} B` with
   :math:`g(\omega) = \frac{2}{\Delta}\frac{1-\omega}{1+\omega}`, and
   :math:`(g - \Lambda + P Q^*)^{-1} = R - R P (I + Q^* R P)^{-1} Q^* R`, :math:`R = (g-\Lambda)^{-1}` diagonal.
3. **Cauchy kernels.** Every term :math:`x^\top R\, y = \sum_i x_i y_i/(g - \Lambda_i)` is a Cauchy
   kernel (:mod:`s4lite.cauchy`), so
   :math:`\hat K(\omega) = \frac{2}{1+\omega}\big[k_{00} - k_{01}(I + k_{11})^{-1}k_{10}\big]`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from . import _check
from .cauchy import cauchy
from .discretize import bilinear

Array = jax.Array


def roots_of_unity(L: int, dtype: Any = None) -> Array:
    r"""The L points :math:`\omega_k = e^{-2\pi i k / L}`, ``k = 0 … L-1`` (the FFT's sign convention)."""
    L = _check.length("L", L)
    k = jnp.arange(L)
    if dtype is None:
        dtype = jnp.result_type(float)
    return jnp.exp(-2j * jnp.pi * k.astype(dtype) / L)


def half_spectrum_roots(L: int, dtype: Any = None) -> Array:
    r"""The first ``L//2 + 1`` of :func:`roots_of_unity`: the frequencies ``irfft`` needs for a real kernel."""
    return roots_of_unity(L, dtype)[: L // 2 + 1]


def kernel_generating_function(Ab: Any, Bb: Any, C: Any, L: int) -> Array:
    r"""Step 1 with a *dense* resolvent (O(N³ L), small N only): K̄ from :math:`\hat K` at the roots of unity.

    Solves :math:`(I - \bar A\omega_k) x = \bar B` for every k, forms
    :math:`\hat K_k = \tilde C x`, :math:`\tilde C = C(I - \bar A^L)`, and returns ``ifft(K̂)`` (complex ``(L,)``).
    """
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    L = _check.length("L", L)
    dtype = jnp.result_type(Ab, Bb, C, 1j)
    Ab, Bb, C = Ab.astype(dtype), Bb.astype(dtype), C.astype(dtype)
    eye = jnp.eye(n, dtype=dtype)
    Ct = C @ (eye - jnp.linalg.matrix_power(Ab, L))
    omega = roots_of_unity(L, jnp.real(jnp.zeros((), dtype)).dtype)

    def at(w):
        return Ct @ jnp.linalg.solve(eye - Ab * w, Bb)

    return jnp.fft.ifft(jax.vmap(at)(omega))


def woodbury_resolvent(Lambda: Any, P: Any, Q: Any, z: Any) -> Array:
    r"""Step 2: :math:`(zI - A)^{-1}` for :math:`A = \operatorname{diag}\Lambda - P Q^*` by the Woodbury identity.

    .. math::
        (zI - \Lambda + PQ^*)^{-1} = R - R P\,(I_r + Q^* R P)^{-1} Q^* R, \qquad R = \operatorname{diag}\frac{1}{z - \Lambda_i}

    Returns the dense ``(N, N)`` matrix (for checking against ``inv``); only an ``r × r`` system is solved.
    """
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    z = _check.scalar("z", z)
    r = 1.0 / (z - Lambda)  # diagonal of R
    RP = r[:, None] * P.T  # (N, r)
    QsR = Q.conj() * r[None, :]  # (r, N)
    small = jnp.eye(P.shape[0], dtype=RP.dtype) + Q.conj() @ RP  # (r, r)
    return jnp.diag(r) - RP @ jnp.linalg.solve(small, QsR)


def kernel_spectrum_dplr(
    Lambda: Array,
    P: Array,
    Q: Array,
    B: Array,
    Ct: Array,
    step: Array,
    omega: Array,
    cauchy_fn: Callable[[Array, Array, Array], Array] = cauchy,
) -> Array:
    r"""Steps 2 + 3: :math:`\hat K(\omega) = \tilde C (I - \bar A\omega)^{-1}\bar B` at the points ``omega``.

    Uses only Cauchy kernels with nodes :math:`g(\omega)` and poles Λ, plus an ``r × r`` solve per point.
    Shapes: ``Lambda, B, Ct (N,)``, ``P, Q (r, N)``, ``omega (M,)`` → ``(M,)``. No argument checks
    (the public wrappers check); differentiable in every argument.
    """
    g = (2.0 / step) * (1.0 - omega) / (1.0 + omega)
    left = jnp.concatenate([Ct[None, :], Q.conj()], axis=0)  # (1+r, N): C̃, Q*
    right = jnp.concatenate([B[None, :], P], axis=0)  # (1+r, N): B, P
    v = left[:, None, :] * right[None, :, :]  # (1+r, 1+r, N)
    k = cauchy_fn(v, g, Lambda)  # (1+r, 1+r, M)
    k00, k01, k10, k11 = k[0, 0], k[0, 1:], k[1:, 0], k[1:, 1:]
    r = P.shape[0]
    if r == 1:
        core = k00 - k01[0] * k10[0] / (1.0 + k11[0, 0])
    else:
        eye = jnp.eye(r, dtype=k.dtype)
        small = jnp.moveaxis(k11, -1, 0) + eye  # (M, r, r)
        sol = jnp.linalg.solve(small, jnp.moveaxis(k10, -1, 0)[..., None])[..., 0]  # (M, r)
        core = k00 - jnp.einsum("rm,mr->m", k01, sol)
    return 2.0 / (1.0 + omega) * core


def _dplr_args(Lambda: Any, P: Any, Q: Any, B: Any, C: Any, step: Any, L: Any, c_name: str = "C"):
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    n = Lambda.shape[0]
    B = _check.vector("B", B, n)
    C = _check.vector(c_name, C, n)
    _check.step_size("step", step)
    L = _check.length("L", L)
    dtype = jnp.result_type(Lambda, P, Q, B, C, 1j)
    return (*(jnp.asarray(x, dtype) for x in (Lambda, P, Q, B, C)), jnp.asarray(step), L)


def kernel_dplr_ctilde(Lambda: Any, P: Any, Q: Any, B: Any, Ct: Any, step: Any, L: int) -> Array:
    r"""The kernel from :math:`\tilde C` directly (the trainable parameter of an S4 layer), real ``(L,)``.

    Returns :math:`\operatorname{Re}\,\text{IFFT}(\hat K(\omega_0 … \omega_{L-1}))`.
    """
    Lambda, P, Q, B, Ct, step, L = _dplr_args(Lambda, P, Q, B, Ct, step, L, c_name="Ct")
    omega = roots_of_unity(L, jnp.real(Lambda).dtype)
    Khat = kernel_spectrum_dplr(Lambda, P, Q, B, Ct, step, omega)
    return jnp.fft.ifft(Khat).real


def kernel_dplr(Lambda: Any, P: Any, Q: Any, B: Any, C: Any, step: Any, L: int) -> Array:
    r"""S4's kernel of the DPLR SSM :math:`(\operatorname{diag}\Lambda - PQ^*, B, C)`, real ``(L,)``.

    Equals ``Re kernel_naive(*bilinear(diag(Lambda) - P^T Q̄, B, step), C, L)``. Forms
    :math:`\tilde C = C(I - \bar A^L)` with log₂L dense squarings (a one-off cost; a trained layer
    learns :math:`\tilde C` directly and calls :func:`kernel_dplr_ctilde`).
    """
    Lambda, P, Q, B, C, step, L = _dplr_args(Lambda, P, Q, B, C, step, L)
    A = jnp.diag(Lambda) - P.T @ Q.conj()
    Ab, _ = bilinear(A, B, step)
    Ct = C @ (jnp.eye(Ab.shape[0], dtype=Ab.dtype) - jnp.linalg.matrix_power(Ab, L))
    return kernel_dplr_ctilde(Lambda, P, Q, B, Ct, step, L)


def kernel_dplr_conj(
    Lambda: Array,
    P: Array,
    B: Array,
    Ct: Array,
    step: Array,
    L: int,
    cauchy_fn: Callable[[Array, Array, Array], Array] | None = None,
    chunks: int = 1,
) -> Array:
    r"""The kernel of a *real* SSM stored by conjugate symmetry: the training path of the S4 layer.

    The N-state DPLR system is closed under conjugation, so only one state of each conjugate pair is
    stored (``Lambda, P, B, Ct`` of shape ``(N/2,)``, rank 1 with Q = P). Then

    * each Woodbury term is :func:`~s4lite.cauchy.cauchy_conj` over N/2 poles, and
    * K̄ is real, so :math:`\hat K(\omega_{L-k}) = \overline{\hat K(\omega_k)}`: only the
      ``L//2 + 1`` frequencies :math:`\omega_0 … \omega_{L/2}` are evaluated and ``irfft`` returns K̄.

    ``cauchy_fn`` is :func:`~s4lite.cauchy.cauchy_conj_imag` by default (S4's nodes g(ω) are purely
    imaginary): on the H200, for H = 256, N = 64, L = 16384 it ran forward in 0.91 ms and forward +
    backward in 2.97 ms, against 1.73 / 3.93 ms for the complex matmul form
    :func:`~s4lite.cauchy.cauchy_conj` and 2.38 / 7.22 ms for :func:`~s4lite.cauchy.cauchy_conj_fused`
    (``artifacts/bench/kernel_gpu*.json``). ``chunks > 1`` trades time for memory (see the benchmark).
    On a GPU the layer uses the fused Pallas kernel instead (:mod:`s4lite.cauchy_pallas`, the same
    numbers without the materialized matrices: 0.83 / 1.84 ms and 161 MiB at that size).
    Returns real ``(L,)``, equal to :func:`kernel_dplr_ctilde` on the full conjugate-closed system.
    No argument checks (it is called inside ``jit``/``vmap`` by the layer); shapes must be as stated.
    """
    from .cauchy import cauchy_conj_imag

    M = L // 2 + 1
    omega = half_spectrum_roots(L, jnp.real(Lambda).dtype)
    fn = cauchy_conj_imag if cauchy_fn is None else cauchy_fn

    def spectrum(om: Array) -> Array:
        return kernel_spectrum_dplr(Lambda, P[None, :], P[None, :], B, Ct, step, om, cauchy_fn=fn)

    if chunks <= 1:
        Khat = spectrum(omega)
    else:
        # Memory: evaluate the frequencies in `chunks` sequential pieces and recompute each piece in
        # the backward pass (jax.checkpoint), so only one piece's (M/chunks, N/2) arrays live at a time.
        size = -(-M // chunks)
        padded = jnp.concatenate([omega, jnp.zeros(size * chunks - M, omega.dtype)]).reshape(chunks, size)
        Khat = jax.lax.map(jax.checkpoint(spectrum), padded).reshape(-1)[:M]
    return jnp.fft.irfft(Khat, n=L)
