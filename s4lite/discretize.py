r"""Discretization: from x' = Ax + Bu to x_k = Ā x_{k-1} + B̄ u_k with step Δ.

=========  ==========================  ====================  =================
method     Ā                           B̄                     order
=========  ==========================  ====================  =================
Euler      I + ΔA                      ΔB                    1
bilinear   (I − Δ/2·A)⁻¹ (I + Δ/2·A)   (I − Δ/2·A)⁻¹ ΔB      2
ZOH        exp(ΔA)                     A⁻¹(exp(ΔA) − I) B    exact, constant u
=========  ==========================  ====================  =================

Bilinear (Tustin, the trapezoid rule) is the one S4 uses. Every function returns
``(Ab, Bb)`` with shapes ``(N, N)`` and ``(N,)`` and works for real or complex ``A``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from . import _check

Array = jax.Array

METHODS = ("euler", "bilinear", "zoh")


def _discretize_args(A: Any, B: Any, step: Any) -> tuple[Array, Array, Array]:
    A = _check.square_matrix("A", A)
    B = _check.vector("B", B, A.shape[0])
    _check.positive("step", step)
    step = jnp.asarray(step)
    if step.ndim != 0:
        raise ValueError(f"step: expected a scalar, got shape {step.shape}")
    dtype = _check.float_dtype(A, B, step)
    return A.astype(dtype), B.astype(dtype), step.astype(_check.real_dtype(dtype))


@_check.checked(_discretize_args)
def euler(A: Array, B: Array, step: Array) -> tuple[Array, Array]:
    r"""Forward Euler (first order): ``Ab (N, N)``, ``Bb (N,)`` from ``A``, ``B``.

    .. math::
        \bar A = I + \Delta A, \qquad \bar B = \Delta B
    """
    I = jnp.eye(A.shape[0], dtype=A.dtype)
    return I + step * A, step * B


@_check.checked(_discretize_args)
def bilinear(A: Array, B: Array, step: Array) -> tuple[Array, Array]:
    r"""Bilinear (Tustin / trapezoid) rule, S4's choice (second order): ``Ab``, ``Bb``.

    .. math::
        \bar A = (I - \tfrac{\Delta}{2} A)^{-1}(I + \tfrac{\Delta}{2} A), \qquad
        \bar B = (I - \tfrac{\Delta}{2} A)^{-1} \Delta B

    Shapes: ``A (N, N)``, ``B (N,)``, ``step`` scalar → ``Ab (N, N)``, ``Bb (N,)``.
    """
    I = jnp.eye(A.shape[0], dtype=A.dtype)
    back = I - (step / 2) * A
    Ab = jnp.linalg.solve(back, I + (step / 2) * A)
    Bb = jnp.linalg.solve(back, step * B[:, None])[:, 0]
    return Ab, Bb


@_check.checked(_discretize_args)
def zoh(A: Array, B: Array, step: Array) -> tuple[Array, Array]:
    r"""Zero-order hold, exact when ``u`` is constant over each step: ``Ab``, ``Bb``.

    .. math::
        \bar A = e^{\Delta A}, \qquad \bar B = \int_0^\Delta e^{sA}\, ds\; B, \qquad
        \begin{pmatrix} \bar A & \bar B \\ 0 & 1 \end{pmatrix}
        = \exp\left(\Delta \begin{pmatrix} A & B \\ 0 & 0 \end{pmatrix}\right)

    (no inverse of A needed, so a singular A is fine). Shapes as :func:`bilinear`.
    """
    n = A.shape[0]
    M = jnp.zeros((n + 1, n + 1), A.dtype).at[:n, :n].set(A).at[:n, n].set(B)
    E = expm(M * step)
    return E[:n, :n], E[:n, n]


def _dispatch_args(A: Any, B: Any, step: Any, method: Any = "bilinear") -> tuple:
    return A, B, step, _check.choice("method", method, METHODS)


@_check.checked(_dispatch_args)
def discretize(
    A: Any, B: Any, step: Any, method: str = "bilinear"
) -> tuple[Array, Array]:
    """Dispatch to :func:`euler`, :func:`bilinear` or :func:`zoh` by name (any case)."""
    return {"euler": euler, "bilinear": bilinear, "zoh": zoh}[method](A, B, step)
