r"""Discretization: from x' = Ax + Bu to x_k = Ā x_{k-1} + B̄ u_k with step Δ.

=========  ===============================================  ==============================  =====
method     Ā                                                 B̄                               order
=========  ===============================================  ==============================  =====
Euler      I + ΔA                                           ΔB                              1
bilinear   (I − Δ/2·A)⁻¹ (I + Δ/2·A)                        (I − Δ/2·A)⁻¹ ΔB                2
ZOH        exp(ΔA)                                          A⁻¹(exp(ΔA) − I) B              exact for piecewise-constant u
=========  ===============================================  ==============================  =====

Bilinear (Tustin, the trapezoid rule) is the one S4 uses. Every function returns ``(Ab, Bb)`` with
shapes ``(N, N)`` and ``(N,)`` and works for real or complex ``A``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from . import _check

Array = jax.Array

METHODS = ("euler", "bilinear", "zoh")


def _prepare(A: Any, B: Any, step: Any) -> tuple[Array, Array, Array]:
    A = _check.square_matrix("A", A)
    B = _check.vector("B", B, A.shape[0])
    _check.positive("step", step)
    step = jnp.asarray(step)
    if step.ndim != 0:
        raise ValueError(f"step: expected a scalar, got shape {step.shape}")
    dtype = jnp.result_type(A, B, step)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    return A.astype(dtype), B.astype(dtype), step.astype(jnp.real(jnp.zeros((), dtype)).dtype)


def euler(A: Any, B: Any, step: Any) -> tuple[Array, Array]:
    r"""Forward Euler: :math:`\bar A = I + \Delta A`, :math:`\bar B = \Delta B` (first order)."""
    A, B, step = _prepare(A, B, step)
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    return eye + step * A, step * B


def bilinear(A: Any, B: Any, step: Any) -> tuple[Array, Array]:
    r"""Bilinear (Tustin / trapezoid) rule, S4's choice (second order).

    .. math::
        \bar A = (I - \tfrac{\Delta}{2} A)^{-1}(I + \tfrac{\Delta}{2} A), \qquad
        \bar B = (I - \tfrac{\Delta}{2} A)^{-1} \Delta B
    """
    A, B, step = _prepare(A, B, step)
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    back = eye - (step / 2) * A
    Ab = jnp.linalg.solve(back, eye + (step / 2) * A)
    Bb = jnp.linalg.solve(back, step * B[:, None])[:, 0]
    return Ab, Bb


def zoh(A: Any, B: Any, step: Any) -> tuple[Array, Array]:
    r"""Zero-order hold: exact when ``u`` is constant over each step.

    :math:`\bar A = e^{\Delta A}`, :math:`\bar B = \int_0^\Delta e^{sA} ds\, B`, both read off
    :math:`\exp\begin{pmatrix} A & B \\ 0 & 0\end{pmatrix}\Delta` (no inverse of A needed, so a
    singular A is fine).
    """
    A, B, step = _prepare(A, B, step)
    n = A.shape[0]
    M = jnp.zeros((n + 1, n + 1), A.dtype).at[:n, :n].set(A).at[:n, n].set(B)
    E = expm(M * step)
    return E[:n, :n], E[:n, n]


def discretize(A: Any, B: Any, step: Any, method: str = "bilinear") -> tuple[Array, Array]:
    """Dispatch to :func:`euler`, :func:`bilinear` or :func:`zoh` by name."""
    method = _check.choice("method", method, METHODS)
    return {"euler": euler, "bilinear": bilinear, "zoh": zoh}[method](A, B, step)
