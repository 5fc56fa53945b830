r"""Theorem 3: the S4 convolution kernel of a DPLR SSM through Cauchy kernels.

For :math:`A = \operatorname{diag}\Lambda - P Q^*` (``P, Q`` of shape ``(N,)`` or
``(r, N)``), bilinear step Δ, and length L, in three steps:

1. **Truncated generating function at the roots of unity.** With
   :math:`\omega_k = e^{-2\pi i k/L}`,
   :math:`\hat K(\omega_k) = \sum_{j<L} \bar K_j \omega_k^j
   = \tilde C (I - \bar A \omega_k)^{-1} \bar B`
   where :math:`\tilde C = C (I - \bar A^L)`, and :math:`\bar K = \text{IFFT}(\hat K)`.
2. **Bilinear + Woodbury.** :math:`\tilde C (I - \bar A\omega)^{-1}\bar B =
   \frac{2}{1+\omega}\,\tilde C\, (g(\omega) - A)^{-1} B` with
   :math:`g(\omega) = \frac{2}{\Delta}\frac{1-\omega}{1+\omega}`, and
   :math:`(g - \Lambda + P Q^*)^{-1} = R - R P (I + Q^* R P)^{-1} Q^* R`,
   :math:`R = (g-\Lambda)^{-1}` diagonal.
3. **Cauchy kernels.** Every term
   :math:`x^\top R\, y = \sum_i x_i y_i/(g - \Lambda_i)` is a Cauchy kernel
   (:mod:`s4lite.cauchy`), so :math:`\hat K(\omega) = \frac{2}{1+\omega}
   \big[k_{00} - k_{01}(I + k_{11})^{-1}k_{10}\big]`.

**Cost, as computed here.** Step 3 evaluates :math:`(1+r)^2` Cauchy sums, each over N
poles at L nodes (N/2 poles and L/2 + 1 nodes with conjugate symmetry,
:func:`kernel_dplr_conj`), summed directly: O((1+r)²·N·L) work. The default XLA path
also *materializes* arrays of size (…, L, N) — the ``(L, N)`` reciprocal matrix of
:func:`~s4lite.cauchy.cauchy`, or four real ``(L/2+1, N/2)`` matrices per SSM with
:func:`~s4lite.cauchy.cauchy_conj_imag` — so its memory is O(N·L) per SSM as well. On
top of that: an r × r solve per node, O(r³·L), and one inverse FFT, O(L log L). Dense
N × N matrices appear only in :func:`kernel_dplr`, which forms :math:`\tilde C` once
with O(N³ log L) work; a trained layer learns :math:`\tilde C` directly
(:func:`kernel_dplr_ctilde`, :func:`kernel_dplr_conj`: no N × N matrix at all). On a
GPU the layer can use the fused Pallas kernel of :mod:`s4lite.cauchy_pallas`: the same
O(N·L) work, without materializing the (…, L, N) arrays.

The paper's near-linear Õ(N + L) bound needs *fast* Cauchy algorithms
(fast-multipole-type approximations), which this package does not use. What the
structure buys here is O(N·L) work instead of the O(N²·L) of
:func:`~s4lite.convolution.kernel_naive`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from . import _check
from .cauchy import cauchy, cauchy_conj_imag
from .discretize import bilinear

Array = jax.Array
CauchyFn = Callable[[Array, Array, Array], Array]


def _roots_args(L: Any, dtype: Any = None) -> tuple[int, Any]:
    return _check.length("L", L), jnp.result_type(float) if dtype is None else dtype


@_check.checked(_roots_args)
def roots_of_unity(L: int, dtype: Any = None) -> Array:
    r"""The roots of unity :math:`\omega_k = e^{-2\pi i k / L}`, ``k < L``: shape
    ``(L,)``.

    The FFT's sign convention; ``dtype`` is the real precision (default: JAX's float).
    """
    k = jnp.arange(L)
    return jnp.exp(-2j * jnp.pi * k.astype(dtype) / L)


@_check.checked(_roots_args)
def half_spectrum_roots(L: int, dtype: Any = None) -> Array:
    r"""The first ``L//2 + 1`` of :func:`roots_of_unity` (the ones ``irfft`` needs).

    A real kernel has :math:`\hat K(\omega_{L-k}) = \overline{\hat K(\omega_k)}`, so
    :math:`\omega_0 … \omega_{L/2}` determine it. Shape ``(L//2 + 1,)``.
    """
    return roots_of_unity(L, dtype)[: L // 2 + 1]


def _kernel_generating_function_args(Ab: Any, Bb: Any, C: Any, L: Any) -> tuple:
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    L = _check.length("L", L)
    dtype = jnp.result_type(Ab, Bb, C, 1j)
    return Ab.astype(dtype), Bb.astype(dtype), C.astype(dtype), L


@_check.checked(_kernel_generating_function_args)
def kernel_generating_function(Ab: Array, Bb: Array, C: Array, L: int) -> Array:
    r"""Step 1 with a *dense* resolvent (O(N³ L), small N only): K̄ from :math:`\hat K`.

    .. math::
        \tilde C = C (I - \bar A^L), \qquad
        \hat K(\omega_k) = \tilde C\, (I - \bar A \omega_k)^{-1} \bar B, \qquad
        \bar K = \text{IFFT}(\hat K)

    ``Ab (N, N)``, ``Bb (N,)``, ``C (N,)`` → complex ``(L,)``.
    """
    I = jnp.eye(Ab.shape[0], dtype=Ab.dtype)
    Ct = C @ (I - jnp.linalg.matrix_power(Ab, L))
    omega = roots_of_unity(L, jnp.real(Ab).dtype)

    def at(w):
        return Ct @ jnp.linalg.solve(I - Ab * w, Bb)

    return jnp.fft.ifft(jax.vmap(at)(omega))


def _woodbury_resolvent_args(Lambda: Any, P: Any, Q: Any, z: Any) -> tuple:
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    return Lambda, P, Q, _check.scalar("z", z)


@_check.checked(_woodbury_resolvent_args)
def woodbury_resolvent(Lambda: Array, P: Array, Q: Array, z: Array) -> Array:
    r"""Step 2: :math:`(zI - A)^{-1}` for :math:`A = \operatorname{diag}\Lambda - PQ^*`.

    By the Woodbury identity, with only an ``r × r`` system to solve:

    .. math::
        (zI - \Lambda + PQ^*)^{-1} = R - R P\,(I_r + Q^* R P)^{-1} Q^* R, \qquad
        R = \operatorname{diag}\frac{1}{z - \Lambda_i}

    ``Lambda (N,)``, ``P, Q (N,)`` or ``(r, N)``, ``z`` scalar. Returns the dense
    ``(N, N)`` matrix (for checking against ``inv``).
    """
    r = 1.0 / (z - Lambda)  # diagonal of R
    RP = r[:, None] * P.T  # (N, r)
    QsR = Q.conj() * r[None, :]  # (r, N)
    small = jnp.eye(P.shape[0], dtype=RP.dtype) + Q.conj() @ RP  # (r, r)
    return jnp.diag(r) - RP @ jnp.linalg.solve(small, QsR)


def _kernel_spectrum_dplr_args(
    Lambda: Any,
    P: Any,
    Q: Any,
    B: Any,
    Ct: Any,
    step: Any,
    omega: Any,
    cauchy_fn: CauchyFn = cauchy,
) -> tuple:
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    n = Lambda.shape[0]
    B = _check.vector("B", B, n)
    Ct = _check.vector("Ct", Ct, n)
    step = _check.step_size("step", step)
    omega = _check.vector("omega", omega, what="M")
    cauchy_fn = _check.function("cauchy_fn", cauchy_fn, "a Cauchy kernel f(v, z, w)")
    return Lambda, P, Q, B, Ct, step, omega, cauchy_fn


@_check.checked(_kernel_spectrum_dplr_args)
def kernel_spectrum_dplr(
    Lambda: Array,
    P: Array,
    Q: Array,
    B: Array,
    Ct: Array,
    step: Array,
    omega: Array,
    cauchy_fn: CauchyFn = cauchy,
) -> Array:
    r"""Steps 2 + 3: :math:`\hat K(\omega) = \tilde C (I - \bar A\omega)^{-1}\bar B`,
    ``(M,)``.

    .. math::
        g = \tfrac{2}{\Delta}\tfrac{1-\omega}{1+\omega}, \quad
        k_{ab}(\omega) = \sum_i \frac{x_{a,i}\, y_{b,i}}{g - \Lambda_i}, \quad
        \hat K(\omega) = \tfrac{2}{1+\omega}
                         \big[k_{00} - k_{01}(I + k_{11})^{-1}k_{10}\big]

    with :math:`x = (\tilde C, Q^*)` and :math:`y = (B, P)`: Cauchy kernels with nodes g
    and poles Λ, plus an ``r × r`` solve per point. Shapes: ``Lambda, B, Ct (N,)``,
    ``P, Q (N,)`` or ``(r, N)``, ``omega (M,)`` → ``(M,)``. Differentiable in every
    argument.
    """
    g = (2.0 / step) * (1.0 - omega) / (1.0 + omega)
    left = jnp.concatenate([Ct[None, :], Q.conj()], axis=0)  # (1+r, N): C̃, Q*
    right = jnp.concatenate([B[None, :], P], axis=0)  # (1+r, N): B, P
    k = cauchy_fn(left[:, None, :] * right[None, :, :], g, Lambda)  # (1+r, 1+r, M)
    k00, k01, k10, k11 = k[0, 0], k[0, 1:], k[1:, 0], k[1:, 1:]
    r = P.shape[0]
    if r == 1:
        core = k00 - k01[0] * k10[0] / (1.0 + k11[0, 0])
    else:
        small = jnp.moveaxis(k11, -1, 0) + jnp.eye(r, dtype=k.dtype)  # (M, r, r)
        rhs = jnp.moveaxis(k10, -1, 0)[..., None]  # (M, r, 1)
        sol = jnp.linalg.solve(small, rhs)[..., 0]  # (M, r)
        core = k00 - jnp.einsum("rm,mr->m", k01, sol)
    return 2.0 / (1.0 + omega) * core


def _dplr_system(
    Lambda: Any, P: Any, Q: Any, B: Any, C: Any, step: Any, L: Any, c_name: str
) -> tuple:
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    n = Lambda.shape[0]
    B = _check.vector("B", B, n)
    C = _check.vector(c_name, C, n)
    _check.step_size("step", step)
    L = _check.length("L", L)
    dtype = jnp.result_type(Lambda, P, Q, B, C, 1j)
    Lambda, P, Q, B, C = (jnp.asarray(x, dtype) for x in (Lambda, P, Q, B, C))
    return Lambda, P, Q, B, C, jnp.asarray(step), L


def _kernel_dplr_ctilde_args(
    Lambda: Any, P: Any, Q: Any, B: Any, Ct: Any, step: Any, L: Any
) -> tuple:
    return _dplr_system(Lambda, P, Q, B, Ct, step, L, c_name="Ct")


def _kernel_dplr_args(
    Lambda: Any, P: Any, Q: Any, B: Any, C: Any, step: Any, L: Any
) -> tuple:
    return _dplr_system(Lambda, P, Q, B, C, step, L, c_name="C")


@_check.checked(_kernel_dplr_ctilde_args)
def kernel_dplr_ctilde(
    Lambda: Array, P: Array, Q: Array, B: Array, Ct: Array, step: Array, L: int
) -> Array:
    r"""The kernel from :math:`\tilde C` (an S4 layer's trainable parameter), real
    ``(L,)``.

    .. math::
        \bar K = \operatorname{Re}\,\text{IFFT}\big(\hat K(\omega_0), \dots,
        \hat K(\omega_{L-1})\big)

    ``Lambda, B, Ct (N,)``, ``P, Q (N,)`` or ``(r, N)``, ``step`` scalar.
    """
    omega = roots_of_unity(L, jnp.real(Lambda).dtype)
    Khat = kernel_spectrum_dplr(Lambda, P, Q, B, Ct, step, omega)
    return jnp.fft.ifft(Khat).real


@_check.checked(_kernel_dplr_args)
def kernel_dplr(
    Lambda: Array, P: Array, Q: Array, B: Array, C: Array, step: Array, L: int
) -> Array:
    r"""S4's kernel of the SSM :math:`(\operatorname{diag}\Lambda - PQ^*, B, C)`: real
    ``(L,)``.

    .. math::
        \bar A = \text{bilinear}(\operatorname{diag}\Lambda - PQ^*, \Delta), \qquad
        \tilde C = C (I - \bar A^L),

    then :func:`kernel_dplr_ctilde` with :math:`\tilde C`. Equals
    ``Re kernel_naive(*bilinear(diag(Lambda) - P^T Q̄, B, step), C, L)``. Forms
    :math:`\tilde C` with log₂L dense squarings (a one-off O(N³ log L) cost; a trained
    layer learns :math:`\tilde C` directly and calls :func:`kernel_dplr_ctilde`).
    """
    A = jnp.diag(Lambda) - P.T @ Q.conj()
    Ab, _ = bilinear(A, B, step)
    I = jnp.eye(Ab.shape[0], dtype=Ab.dtype)
    Ct = C @ (I - jnp.linalg.matrix_power(Ab, L))
    return kernel_dplr_ctilde(Lambda, P, Q, B, Ct, step, L)


def _kernel_dplr_conj_args(
    Lambda: Any,
    P: Any,
    B: Any,
    Ct: Any,
    step: Any,
    L: Any,
    cauchy_fn: CauchyFn | None = None,
    chunks: Any = 1,
) -> tuple:
    Lambda = _check.vector("Lambda", Lambda, what="N/2")
    n = Lambda.shape[0]
    P = _check.vector("P", P, n, what="N/2")
    B = _check.vector("B", B, n, what="N/2")
    Ct = _check.vector("Ct", Ct, n, what="N/2")
    step = _check.step_size("step", step)
    L = _check.length("L", L)
    if cauchy_fn is None:
        cauchy_fn = cauchy_conj_imag
    cauchy_fn = _check.function("cauchy_fn", cauchy_fn, "a Cauchy kernel f(v, z, w)")
    return Lambda, P, B, Ct, step, L, cauchy_fn, _check.length("chunks", chunks)


def _in_pieces(f: Callable[[Array], Array], omega: Array, pieces: int) -> Array:
    """``f(omega)`` evaluated in ``pieces`` sequential parts, each recomputed in the
    backward pass (``jax.checkpoint``), so that only one part's intermediate arrays live
    at a time."""
    M = omega.shape[0]
    size = -(-M // pieces)
    padded = jnp.concatenate([omega, jnp.zeros(size * pieces - M, omega.dtype)])
    return jax.lax.map(jax.checkpoint(f), padded.reshape(pieces, size)).reshape(-1)[:M]


@_check.checked(_kernel_dplr_conj_args)
def kernel_dplr_conj(
    Lambda: Array,
    P: Array,
    B: Array,
    Ct: Array,
    step: Array,
    L: int,
    cauchy_fn: CauchyFn | None = None,
    chunks: int = 1,
) -> Array:
    r"""The kernel of a *real* SSM stored by conjugate symmetry: the S4 layer's kernel.

    The N-state DPLR system is closed under conjugation, so only one state of each
    conjugate pair is stored: ``Lambda, P, B, Ct`` of shape ``(N/2,)``, rank 1 with
    Q = P. Then

    * each Woodbury term is a Cauchy kernel over the N/2 stored poles plus their
      conjugates (``cauchy_fn``, by default :func:`~s4lite.cauchy.cauchy_conj_imag`,
      since S4's nodes g(ω) are purely imaginary), and
    * K̄ is real, so :math:`\hat K(\omega_{L-k}) = \overline{\hat K(\omega_k)}`: only
      the ``L//2 + 1`` frequencies :math:`\omega_0 … \omega_{L/2}` are evaluated and
      ``irfft`` returns K̄.

    ``chunks > 1`` evaluates the frequencies in that many pieces (less memory, more
    time). Returns real ``(L,)``, equal to :func:`kernel_dplr_ctilde` on the full
    conjugate-closed system.
    """
    omega = half_spectrum_roots(L, jnp.real(Lambda).dtype)  # ω_0 … ω_{L/2}
    P1 = P[None, :]  # rank 1, Q = P

    def spectrum(om: Array) -> Array:
        return kernel_spectrum_dplr(Lambda, P1, P1, B, Ct, step, om, cauchy_fn)

    Khat = spectrum(omega) if chunks == 1 else _in_pieces(spectrum, omega, chunks)
    return jnp.fft.irfft(Khat, n=L)
