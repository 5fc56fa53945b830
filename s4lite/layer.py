r"""The S4 layer: H independent single-input single-output SSMs, one per feature channel.

Each channel h holds a DPLR SSM :math:`A_h = \operatorname{diag}\Lambda_h - P_h P_h^*` initialized
from HiPPO-LegS (:func:`s4lite.hippo.make_dplr`), input vector :math:`B_h`, output vector
:math:`\tilde C_h` (learned directly, see :func:`s4lite.kernel.kernel_dplr_ctilde`), step
:math:`\Delta_h` and skip term :math:`D_h`. On a sequence :math:`u \in \mathbb R^{L\times H}`:

.. math::
    y_{:,h} = \bar K_h * u_{:,h} + D_h u_{:,h}

**Parameters are a plain dict of real arrays** (a pytree): every operation is a pure function of it,
so ``jax.jit``, ``jax.grad`` and ``optax`` apply directly and nothing is hidden in a framework.
Complex numbers are stored as a trailing axis of size 2 (real, imaginary).

================  ===========  ============================================================
key               shape        meaning
================  ===========  ============================================================
``log_neg_re``    (H, N/2)     :math:`\log(-\operatorname{Re}\Lambda)`: the real part stays negative
``im``            (H, N/2)     :math:`\operatorname{Im}\Lambda`
``P``             (H, N/2, 2)  low-rank term (rank 1, Q = P)
``B``             (H, N/2, 2)  input vector
``Ct``            (H, N/2, 2)  :math:`\tilde C = C(I - \bar A^L)`
``log_step``      (H,)         :math:`\log \Delta`, initialized log-uniform in [dt_min, dt_max]
``D``             (H,)         skip connection
================  ===========  ============================================================

Only one state of each conjugate pair is stored (N/2 numbers); the layer is a real map.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import _check
from .dplr_step import DiscreteDPLR, discrete_dplr, dplr_step
from .kernel import kernel_dplr_conj

Array = jax.Array
Params = dict[str, Array]

SSM_KEYS = ("log_neg_re", "im", "P", "B", "log_step")  # the paper's "SSM parameters"


def _to_pair(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1)


def _complex(x: Array) -> Array:
    return jax.lax.complex(x[..., 0], x[..., 1])


def hippo_half(N: int, measure: str = "legs") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One state of each conjugate pair of ``make_dplr(N, measure)``: ``(Lambda, P, B)``, each ``(N/2,)``."""
    from .hippo import make_dplr

    N = _check.length("N", N)
    if N % 2:
        raise ValueError(f"N: expected an even state size (states come in conjugate pairs), got {N}")
    Lambda, P, B, _ = make_dplr(N, measure)
    if P.ndim != 1:
        raise ValueError(f"measure: the S4 layer needs a rank-1 measure ('legs' or 'lagt'), got {measure!r}")
    keep = np.argsort(-Lambda.imag)[: N // 2]  # positive imaginary parts
    return Lambda[keep], P[keep], B[keep]


def _init_s4_args(
    key: Array,
    H: int,
    N: int = 64,
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    measure: str = "legs",
) -> tuple:
    H = _check.length("H", H)
    _check.positive("dt_min", dt_min)
    _check.positive("dt_max", dt_max)
    if dt_min > dt_max:
        raise ValueError(f"dt_min: expected dt_min <= dt_max, got {dt_min} > {dt_max}")
    hippo_half(N, measure)  # checks N and measure
    return key, H, N, dt_min, dt_max, measure


@_check.checked(_init_s4_args)
def init_s4(
    key: Array,
    H: int,
    N: int = 64,
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    measure: str = "legs",
) -> Params:
    """Parameters of an S4 layer: ``H`` channels, state size ``N``, HiPPO ``measure``.

    Every channel starts from the same HiPPO SSM; log Δ is uniform in
    [log dt_min, log dt_max] and C̃ is Gaussian.
    """
    Lambda, P, B = hippo_half(N, measure)
    k_step, k_c = jax.random.split(key)
    def tile(a):  # the same values for every channel
        return jnp.asarray(np.tile(a[None], (H,) + (1,) * a.ndim), jnp.float32)

    log_dt_range = dict(minval=np.log(dt_min), maxval=np.log(dt_max))
    log_dt = jax.random.uniform(k_step, (H,), **log_dt_range)
    Ct = jax.random.normal(k_c, (H, N // 2, 2)) * np.sqrt(0.5)
    return {
        "log_neg_re": tile(np.log(-Lambda.real)),
        "im": tile(Lambda.imag),
        "P": tile(_to_pair(P)),
        "B": tile(_to_pair(B)),
        "Ct": Ct.astype(jnp.float32),
        "log_step": log_dt.astype(jnp.float32),
        "D": jnp.ones((H,), jnp.float32),
    }


def ssm_parts(params: Params) -> tuple[Array, Array, Array, Array, Array]:
    """Complex ``(Lambda, P, B, Ct)``, each ``(H, N/2)``, and ``step (H,)``."""
    Lambda = jax.lax.complex(-jnp.exp(params["log_neg_re"]), params["im"])
    P, B, Ct = (_complex(params[k]) for k in ("P", "B", "Ct"))
    return Lambda, P, B, Ct, jnp.exp(params["log_step"])


def _s4_kernel_args(params: Params, L: int) -> tuple:
    return params, _check.length("L", L)


@_check.checked(_s4_kernel_args)
def s4_kernel(params: Params, L: int) -> Array:
    """The H convolution kernels, real ``(H, L)`` (Theorem 3 with conjugate symmetry).

    :func:`~s4lite.kernel.kernel_dplr_conj` (real-arithmetic Cauchy matrices) mapped
    over the H channels; :func:`s4_kernel_fused` gives the same numbers in one kernel.
    """
    Lambda, P, B, Ct, step = ssm_parts(params)
    per_channel = jax.vmap(kernel_dplr_conj, in_axes=(0, 0, 0, 0, 0, None))
    return per_channel(Lambda, P, B, Ct, step, L)


@_check.checked(_s4_kernel_args)
def s4_kernel_fused(params: Params, L: int) -> Array:
    """:func:`s4_kernel` with the Cauchy sums in one Pallas kernel, ``(H, L)``.

    :func:`~s4lite.cauchy_pallas.kernel_dplr_conj_fused`: one fused Triton kernel
    forward and one backward on a GPU of compute capability >= 8.0; elsewhere
    Pallas's (slow) interpreter.
    """
    from .cauchy_pallas import kernel_dplr_conj_fused

    Lambda, P, B, Ct, step = ssm_parts(params)
    return kernel_dplr_conj_fused(Lambda, P, B, Ct, step, L)


def fft_length(L: int) -> int:
    """FFT length for a linear (non-circular) convolution of two length-L signals.

    At least 2L − 1 so nothing wraps around, rounded up to a power of two (a fast FFT size; the
    comparison with other sizes is in ``artifacts/bench/README.md``).
    """
    return 1 << (2 * L - 1).bit_length()


def fft_conv(u: Array, K: Array) -> Array:
    """Causal convolution of every channel by FFT (zero padded).

    ``u (..., L, H)``, ``K (H, L)`` → ``(..., L, H)``.
    """
    L = u.shape[-2]
    n = fft_length(L)
    u_f = jnp.fft.rfft(jnp.swapaxes(u, -1, -2), n=n)  # (..., H, n/2+1)
    K_f = jnp.fft.rfft(K, n=n)  # (H, n/2+1)
    y = jnp.fft.irfft(u_f * K_f, n=n)[..., :L]
    return jnp.swapaxes(y, -1, -2)


def toeplitz_matrix(K: Array) -> Array:
    """Lower-triangular Toeplitz matrices ``T (H, L, L)`` with ``T[h, i, j] = K[h, i − j]`` for i ≥ j, else 0."""
    L = K.shape[-1]
    lag = jnp.arange(L)[:, None] - jnp.arange(L)[None, :]
    return jnp.where(lag >= 0, K[:, jnp.clip(lag, 0, L - 1)], 0.0)


def diagonal_sums(M: Array) -> Array:
    """``s[h, m] = Σ_i M[h, i, i − m]`` for m = 0 … L−1 (sums along the sub-diagonals), ``(H, L)``.

    Reverse the columns, pad each row to 2L and reread the buffer with rows of length 2L − 1: row i
    then starts i places later, so every sub-diagonal lands in one column.
    """
    H, L, _ = M.shape
    R = jnp.pad(M[:, :, ::-1], ((0, 0), (0, 0), (0, L)))  # (H, L, 2L)
    skew = R.reshape(H, L * 2 * L)[:, : L * (2 * L - 1)].reshape(H, L, 2 * L - 1)
    return jnp.sum(skew[:, :, L - 1 :], axis=1)


@jax.custom_vjp
def toeplitz_conv(u: Array, K: Array) -> Array:
    """Causal convolution as a batched matrix product: ``y[b, :, h] = T_h u[b, :, h]``.

    ``u (B, L, H)``. O(L²) work instead of O(L log L), but on the matrix units
    (timings against the FFT: ``artifacts/bench/README.md``). The backward pass is
    written by hand so the gradient of K is a sum along diagonals, not a scatter.
    """
    return jnp.einsum("hij,bjh->bih", toeplitz_matrix(K), u)


def _toeplitz_fwd(u: Array, K: Array) -> tuple[Array, tuple[Array, Array]]:
    T = toeplitz_matrix(K)
    return jnp.einsum("hij,bjh->bih", T, u), (u, T)


def _toeplitz_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    u, T = res
    du = jnp.einsum("hij,bih->bjh", T, dy)
    dT = jnp.einsum("bih,bjh->hij", dy, u)
    return du, diagonal_sums(dT)


toeplitz_conv.defvjp(_toeplitz_fwd, _toeplitz_bwd)


def _bf16_matmul(spec: str, a: Array, b: Array) -> Array:
    """``einsum`` with bfloat16 inputs and float32 accumulation (the tensor cores' fast path).

    XLA's CPU backend has no bf16 × bf16 → f32 product, so there the inputs are rounded to bfloat16
    and multiplied in float32: the same numbers, computed the slow way.
    """
    a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
    if jax.default_backend() == "cpu":
        return jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32))
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


@jax.custom_vjp
def toeplitz_conv_bf16(u: Array, K: Array) -> Array:
    """:func:`toeplitz_conv` with the three matrix products in bfloat16 (float32 sums): faster, less exact.

    Relative error about 1e-3 (bfloat16 keeps 8 bits of mantissa); the kernel K itself is still
    computed in float32.
    """
    return _bf16_matmul("hij,bjh->bih", toeplitz_matrix(K), u).astype(u.dtype)


def _toeplitz_bf16_fwd(u: Array, K: Array) -> tuple[Array, tuple[Array, Array]]:
    T = toeplitz_matrix(K)
    return _bf16_matmul("hij,bjh->bih", T, u).astype(u.dtype), (u, T)


def _toeplitz_bf16_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    u, T = res
    du = _bf16_matmul("hij,bih->bjh", T, dy).astype(u.dtype)
    dT = _bf16_matmul("bih,bjh->hij", dy, u)
    return du, diagonal_sums(dT).astype(T.dtype)


toeplitz_conv_bf16.defvjp(_toeplitz_bf16_fwd, _toeplitz_bf16_bwd)

CONVOLUTIONS = {"fft": fft_conv, "toeplitz": toeplitz_conv, "toeplitz_bf16": toeplitz_conv_bf16}


def _s4_apply_args(
    params: Params,
    u: Any,
    kernel: Callable = s4_kernel,
    conv: Callable = fft_conv,
    channels_first: bool = False,
) -> tuple:
    u = _check.as_array("u", u)
    H = params["D"].shape[0]
    if u.ndim < 2 or u.shape[0 if channels_first else -1] != H:
        shape = "(H, ..., L)" if channels_first else "(..., L, H)"
        raise ValueError(f"u: expected shape {shape} with H={H}, got {u.shape}")
    if not callable(conv) or not callable(kernel):
        raise ValueError(f"conv: expected functions kernel(params, L) and conv(u, K), got {conv!r}")
    if conv in (toeplitz_conv, toeplitz_conv_bf16) and u.ndim != 3:
        raise ValueError(f"u: the toeplitz convolution expects shape (B, L, H), got {u.shape}")
    return params, u, kernel, conv, channels_first


@_check.checked(_s4_apply_args)
def s4_apply(
    params: Params,
    u: Array,
    kernel: Callable = s4_kernel,
    conv: Callable = fft_conv,
    channels_first: bool = False,
) -> Array:
    """The S4 layer in convolution mode, y = K̄ * u + D u, ``(..., L, H)`` → same.

    D u = (D δ) * u with δ = [1, 0, 0, …]: the skip term is the kernel's tap at lag 0,
    so one convolution with K̄ + D δ computes both terms.
    ``kernel(params, L)`` computes K̄ (:func:`s4_kernel`, :func:`s4_kernel_fused`);
    ``conv(u, K)`` is the causal convolution (:func:`fft_conv`, :func:`toeplitz_conv`,
    :func:`toeplitz_conv_bf16`). ``channels_first``: ``u`` is ``(H, ..., L)`` and
    ``conv`` takes that layout (:func:`s4lite.toeplitz_pallas.toeplitz_conv_tiled_cf`).
    """
    L = u.shape[-1 if channels_first else -2]
    K = kernel(params, L).at[:, 0].add(params["D"])
    return conv(u, K.astype(u.dtype))


# ----------------------------------------------------------------------------------------------
# Recurrent mode (Theorem 2): same outputs, O(N) per step, for generation.
# ----------------------------------------------------------------------------------------------


def _full(x: Array) -> Array:
    """Both members of each conjugate pair: ``(..., N/2)`` → ``(..., N)``."""
    return jnp.concatenate([x, jnp.conj(x)], axis=-1)


def c_from_ctilde(Lambda: Any, P: Any, Ct: Any, step: Any, L: int) -> np.ndarray:
    r"""Solve :math:`C (I - \bar A^L) = \tilde C` for C, in float64 on the host.

    ``Lambda, P, Ct`` are the full ``(H, N)`` conjugate-closed arrays, ``step (H,)``.
    With :math:`A_h = \Lambda_h - P_h P_h^*` and
    :math:`\bar A_h = (2/\Delta_h - A_h)^{-1}(2/\Delta_h + A_h)`, the H systems are
    solved at once, stacked ``(H, N, N)``. It is a one-off set-up, so it is done in
    float64 on the host: exact enough whatever the device's matmul precision (why that
    matters: ``artifacts/generation/README.md``).
    """
    Lambda, P, Ct, step = (np.asarray(x, np.complex128) for x in (Lambda, P, Ct, step))
    eye = np.eye(Lambda.shape[-1])
    A = Lambda[:, :, None] * eye - P[:, :, None] * P.conj()[:, None, :]  # (H, N, N)
    two_over = (2.0 / step)[:, None, None] * eye
    Ab = np.linalg.solve(two_over - A, two_over + A)
    M = np.swapaxes(eye - np.linalg.matrix_power(Ab, L), -1, -2)
    return np.linalg.solve(M, Ct[:, :, None])[:, :, 0]


def recurrent_form(params: Params, L: int) -> tuple[DiscreteDPLR, Array]:
    r"""The RNN of every channel: ``(disc, C)`` batched over H, for sequences of length ``L``.

    The layer learns :math:`\tilde C = C(I - \bar A^L)`; the recurrence needs C itself, so we solve
    :math:`C = \tilde C (I - \bar A^L)^{-1}` once (:func:`c_from_ctilde`: dense N × N per channel, in
    float64 on the host — a one-off set-up cost; the per-step work stays O(N)). States are the full N
    (both members of each pair). Call it outside ``jit`` (it needs concrete parameters).
    """
    L = _check.length("L", L)
    Lambda, P, B, Ct, step = ssm_parts(params)
    if not all(_check.is_concrete(x) for x in (Lambda, P, Ct, step)):
        raise ValueError("params: recurrent_form needs concrete parameters (call it outside jax.jit)")
    Lf, Pf, Bf, Ctf = (_full(x) for x in (Lambda, P, B, Ct))
    C = jnp.asarray(c_from_ctilde(Lf, Pf, Ctf, step, L), Lf.dtype)
    disc = jax.vmap(lambda lam, p, b, dt: discrete_dplr(lam, p, p, b, dt))(Lf, Pf, Bf, step)
    return disc, C


def s4_step(disc: DiscreteDPLR, C: Array, D: Array, x: Array, u_k: Array) -> tuple[Array, Array]:
    """One step of all H channels: state ``x (H, N)`` complex, input ``u_k (H,)`` → ``(x, y_k (H,))``."""
    x = jax.vmap(dplr_step)(disc, x, u_k.astype(x.dtype))
    y = jnp.real(jnp.einsum("hn,hn->h", C, x)) + D * u_k
    return x, y


def s4_apply_recurrent(params: Params, u: Array) -> Array:
    """The S4 layer in recurrent mode: ``u (L, H)`` → ``y (L, H)``, equal to :func:`s4_apply`."""
    u = _check.as_array("u", u)
    H = params["D"].shape[0]
    if u.ndim != 2 or u.shape[-1] != H:
        raise ValueError(f"u: expected shape (L, H) with H={H}, got {u.shape}")
    disc, C = recurrent_form(params, u.shape[0])
    x0 = jnp.zeros(C.shape, C.dtype)

    def step(x, u_k):
        return s4_step(disc, C, params["D"], x, u_k)

    _, y = jax.lax.scan(step, x0, u)
    return y
