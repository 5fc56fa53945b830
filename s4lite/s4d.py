r"""S4D: a diagonal state matrix, and its kernel as a Vandermonde product.

Drop the low-rank term of S4's DPLR matrix and keep :math:`A = \operatorname{diag}\Lambda`. Every
state then evolves on its own, and the convolution kernel needs no Cauchy kernel or Woodbury
identity: with :math:`\bar\Lambda, \bar B` the discretized diagonal and input,

.. math::
    \bar K_k = \sum_{n} C_n \bar B_n \bar\Lambda_n^k
    = \big[(C \odot \bar B)^\top V\big]_k, \qquad V_{nk} = \bar\Lambda_n^k \ \text{(a Vandermonde matrix)}.

States come in conjugate pairs so that the kernel is real; as in the S4 layer only one state of
each pair is stored (``N/2`` entries for state size N) and the sum over a pair is
:math:`2\operatorname{Re}`.

Initializations of :math:`\Lambda` (``n = 0 … N/2 − 1``), with ``B = 1`` for the first two:

* ``"lin"``  (S4D-Lin): :math:`\Lambda_n = -\tfrac12 + i\pi n`;
* ``"inv"``  (S4D-Inv): :math:`\Lambda_n = -\tfrac12 + i\,\tfrac{N}{\pi}\big(\tfrac{N}{2n+1} - 1\big)`;
* ``"legs"`` (S4D-LegS): the eigenvalues of the normal part of HiPPO-LegS (those with positive
  imaginary part) and :math:`B = V^* B` from :func:`s4lite.hippo.make_dplr`.

The layer (H channels) stores its parameters as a dict of real arrays like :mod:`s4lite.layer`:

================  ===========  ============================================================
key               shape        meaning
================  ===========  ============================================================
``log_neg_re``    (H, N/2)     :math:`\log(-\operatorname{Re}\Lambda)`: the real part stays negative
``im``            (H, N/2)     :math:`\operatorname{Im}\Lambda`
``B``             (H, N/2, 2)  input vector (real, imaginary)
``C``             (H, N/2, 2)  output vector (real, imaginary)
``log_step``      (H,)         :math:`\log \Delta`, log-uniform in [dt_min, dt_max]
``D``             (H,)         skip connection
================  ===========  ============================================================
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _check

Array = jax.Array
Params = dict[str, Array]

INITS = ("lin", "inv", "legs")
METHODS = ("zoh", "bilinear")
SSM_KEYS = ("log_neg_re", "im", "B", "log_step")  # the "SSM parameters" (smaller lr, no decay)


# ----------------------------------------------------------------------------------------------
# Initialization
# ----------------------------------------------------------------------------------------------


def _state_size(N: Any) -> int:
    N = _check.length("N", N)
    if N % 2:
        raise ValueError(f"N: expected an even state size (conjugate pairs), got {N}")
    return N


def _init_s4d_args(N: Any, init: str = "lin") -> tuple:
    return _state_size(N), _check.choice("init", init, INITS)


@_check.checked(_init_s4d_args)
def init_s4d(N: int, init: str = "lin") -> tuple[np.ndarray, np.ndarray]:
    r"""``(Lambda, B)``, complex128 ``(N/2,)``: one state of each conjugate pair.

    lin: :math:`-\tfrac12 + i\pi n`;
    inv: :math:`-\tfrac12 + i\tfrac{N}{\pi}(\tfrac{N}{2n+1} - 1)`, both with B = 1;
    legs: the normal part of HiPPO-LegS, diagonalized (:func:`legs_diagonal`).
    """
    n = np.arange(N // 2)
    if init == "legs":
        return legs_diagonal(N)
    if init == "lin":
        imag = np.pi * n
    else:
        imag = N / np.pi * (N / (2 * n + 1) - 1)
    return -0.5 + 1j * imag, np.ones(N // 2, np.complex128)


def legs_diagonal(N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""S4D-LegS: :math:`A = V(\operatorname{diag}\Lambda - \tilde P\tilde P^*)V^*`
    without :math:`\tilde P\tilde P^*`: ``(Lambda, V* B)`` of
    :func:`~s4lite.hippo.make_dplr`, the half with :math:`\operatorname{Im}\Lambda > 0`.
    """
    from .hippo import make_dplr

    Lambda, _, B, _ = make_dplr(_state_size(N), "legs")
    keep = np.argsort(-Lambda.imag)[: N // 2]
    return Lambda[keep], B[keep]


# ----------------------------------------------------------------------------------------------
# Discretization of a diagonal system, and the Vandermonde kernel
# ----------------------------------------------------------------------------------------------


def discretize_diag(
    Lambda: Array, B: Array, step: Array, method: str = "zoh"
) -> tuple[Array, Array]:
    r"""Discretize :math:`x' = \operatorname{diag}(\Lambda)x + Bu`, state by state.

    .. math::
        \text{zoh: } \bar\Lambda = e^{\Delta\Lambda},\
        \bar B = \frac{e^{\Delta\Lambda} - 1}{\Lambda}B; \qquad
        \text{bilinear: }
        \bar\Lambda = \frac{1 + \Delta\Lambda/2}{1 - \Delta\Lambda/2},\
        \bar B = \frac{\Delta B}{1 - \Delta\Lambda/2}
    """
    if method == "zoh":
        Lb = jnp.exp(step * Lambda)
        return Lb, (Lb - 1.0) / Lambda * B
    back = 1.0 - step / 2 * Lambda
    return (1.0 + step / 2 * Lambda) / back, step * B / back


def vandermonde_kernel(Lambda_bar: Array, CB: Array, L: int) -> Array:
    r""":math:`\bar K_k = 2\operatorname{Re}\sum_n (C\bar B)_n \bar\Lambda_n^k`, k < L.

    Real ``(L,)``. :math:`\bar\Lambda_n^k = e^{k\log\bar\Lambda_n}`: an ``(N/2, L)``
    Vandermonde matrix, O(N L) work, no matrix power.
    """
    V = jnp.exp(jnp.log(Lambda_bar)[:, None] * jnp.arange(L))  # (N/2, L)
    return 2.0 * jnp.real(CB @ V)


def _kernel_s4d_args(
    Lambda: Any, B: Any, C: Any, step: Any, L: Any, method: str = "zoh"
) -> tuple:
    Lambda = _check.vector("Lambda", Lambda, what="N/2")
    n = Lambda.shape[0]
    B = _check.vector("B", B, n, what="N/2")
    C = _check.vector("C", C, n, what="N/2")
    _check.step_size("step", step)
    L = _check.length("L", L)
    method = _check.choice("method", method, METHODS)
    dtype = jnp.result_type(Lambda, B, C, 1j)
    real = jnp.real(jnp.zeros((), dtype)).dtype
    cast = (jnp.asarray(x, dtype) for x in (Lambda, B, C))
    return (*cast, jnp.asarray(step, real), L, method)


@_check.checked(_kernel_s4d_args)
def kernel_s4d(
    Lambda: Array, B: Array, C: Array, step: Array, L: int, method: str = "zoh"
) -> Array:
    r"""The kernel of :math:`(\operatorname{diag}[\Lambda, \bar\Lambda], [B, \bar B],
    [C, \bar C])`, real ``(L,)``.

    ``Lambda, B, C`` complex ``(N/2,)`` (one state per conjugate pair), ``step`` > 0:
    discretize each state, then one Vandermonde product.
    """
    Lambda_bar, B_bar = discretize_diag(Lambda, B, step, method)
    return vandermonde_kernel(Lambda_bar, C * B_bar, L)


# ----------------------------------------------------------------------------------------------
# The layer: H channels, parameters as a dict of real arrays
# ----------------------------------------------------------------------------------------------


def _pair(z: Array) -> Array:
    return jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)


def _complex(x: Array) -> Array:
    return jax.lax.complex(x[..., 0], x[..., 1])


def _init_s4d_layer_args(
    key: Any, H: Any, N: Any, init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1
) -> tuple:
    H = _check.length("H", H)
    N = _state_size(N)
    init = _check.choice("init", init, INITS)
    _check.positive("dt_min", dt_min)
    _check.positive("dt_max", dt_max)
    if dt_min > dt_max:
        raise ValueError(f"dt_min: expected dt_min <= dt_max, got {dt_min} > {dt_max}")
    return key, H, N, init, float(dt_min), float(dt_max)


@_check.checked(_init_s4d_layer_args)
def init_s4d_layer(
    key: Array, H: int, N: int, init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1
) -> Params:
    """Parameters of an S4D layer with ``H`` channels of state size ``N`` (see the module table).

    Every channel starts from the same ``(Lambda, B)`` of :func:`init_s4d`; C is complex normal
    (variance 1/2 per part), log Δ uniform in [log dt_min, log dt_max], D = 1. float32.
    """
    Lambda, B = init_s4d(N, init)
    k_step, k_c = jax.random.split(key)
    tile = lambda a: jnp.asarray(np.tile(a[None], (H,) + (1,) * a.ndim), jnp.float32)  # noqa: E731
    log_step = jax.random.uniform(k_step, (H,), minval=np.log(dt_min), maxval=np.log(dt_max))
    return {
        "log_neg_re": tile(np.log(-Lambda.real)),
        "im": tile(Lambda.imag),
        "B": tile(np.stack([B.real, B.imag], axis=-1)),
        "C": (jax.random.normal(k_c, (H, N // 2, 2)) * np.sqrt(0.5)).astype(jnp.float32),
        "log_step": log_step.astype(jnp.float32),
        "D": jnp.ones((H,), jnp.float32),
    }


def s4d_parts(params: Params) -> tuple[Array, Array, Array, Array]:
    """Complex ``(Lambda, B, C)`` of shape ``(H, N/2)`` and ``step (H,)`` from the stored parameters."""
    Lambda = jax.lax.complex(-jnp.exp(params["log_neg_re"]), params["im"])
    return Lambda, _complex(params["B"]), _complex(params["C"]), jnp.exp(params["log_step"])


def _kernel_s4d_layer_args(params: Params, L: Any, method: str = "zoh") -> tuple:
    missing = [k for k in ("log_neg_re", "im", "B", "C", "log_step") if k not in params]
    if missing:
        raise ValueError(f"params: expected S4D layer parameters, missing {missing}")
    return params, _check.length("L", L), _check.choice("method", method, METHODS)


@_check.checked(_kernel_s4d_layer_args)
def kernel_s4d_layer(params: Params, L: int, method: str = "zoh") -> Array:
    """The H kernels of an S4D layer, real ``(H, L)``: :func:`kernel_s4d` for every channel."""
    Lambda, B, C, step = s4d_parts(params)

    def one(lam: Array, b: Array, c: Array, dt: Array) -> Array:
        Lambda_bar, B_bar = discretize_diag(lam, b, dt, method)
        return vandermonde_kernel(Lambda_bar, c * B_bar, L)

    return jax.vmap(one)(Lambda, B, C, step)


def s4d_apply(params: Params, u: Array, method: str = "zoh") -> Array:
    """The S4D layer: ``u (..., L, H)`` → ``y (..., L, H)``, y = K̄ * u + D u (FFT convolution)."""
    from .layer import fft_conv

    u = _check.as_array("u", u)
    H = params["D"].shape[0]
    if u.ndim < 2 or u.shape[-1] != H:
        raise ValueError(f"u: expected shape (..., L, H) with H={H}, got {u.shape}")
    K = kernel_s4d_layer(params, u.shape[-2], method)
    return fft_conv(u, K.astype(u.dtype)) + params["D"] * u
