r"""Selective state spaces: Δ, B and C change with every time step (Mamba's S6).

One diagonal SSM per input channel d (``D_in`` channels), state size N, a real diagonal
:math:`A_d \in \mathbb R^N`, and per-step :math:`\Delta_t \in \mathbb R^{D_{in}}`,
:math:`B_t, C_t \in \mathbb R^N` shared by the channels:

.. math::
    x_t = \bar A_t \odot x_{t-1} + \bar B_t u_t,\qquad y_t = x_t C_t + D \odot u_t,\qquad x_{-1} = 0,

    \bar A_t = \exp(\Delta_t \odot A) \ \text{(ZOH)},\qquad
    \bar B_t u_t = (\Delta_t \odot u_t)\, B_t^\top \ \text{(Euler, as Mamba's reference code)}

with :math:`x_t \in \mathbb R^{D_{in} \times N}`. The recurrence is linear in x, so the pairs
:math:`(\bar A_t, \bar B_t u_t)` compose associatively and the scan can run in parallel
(:func:`scan_parallel`, :func:`jax.lax.associative_scan`): O(L) work, O(log L) depth.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array

METHODS = ("sequential", "parallel")
B_RULES = ("euler", "zoh")


def discretize_selective(
    u: Array, delta: Array, A: Array, B: Array, b_rule: str = "euler"
) -> tuple[Array, Array]:
    r"""Per-step :math:`\bar A_t` and :math:`\bar B_t u_t`, both ``(L, D_in, N)``.

    .. math::
        \bar A_t = e^{\Delta_t A},\quad
        \bar B_t u_t = \Delta_t u_t B_t \ \text{(euler)}\ \text{ or }\
        \frac{e^{\Delta_t A} - 1}{A}\, u_t B_t \ \text{(zoh)}
    """
    dA = delta[:, :, None] * A[None]  # (L, D_in, N)
    A_bar = jnp.exp(dA)
    if b_rule == "zoh":
        return A_bar, (A_bar - 1.0) / A[None] * (u[:, :, None] * B[:, None, :])
    return A_bar, (delta * u)[:, :, None] * B[:, None, :]


def scan_sequential(A_bar: Array, Bu: Array) -> Array:
    r"""All states :math:`x_t = \bar A_t x_{t-1} + \bar B_t u_t`, one step after the
    other: ``(L, D_in, N)``."""

    def step(x, ab):
        x = ab[0] * x + ab[1]
        return x, x

    _, xs = jax.lax.scan(step, jnp.zeros_like(Bu[0]), (A_bar, Bu))
    return xs


def combine(
    first: tuple[Array, Array], then: tuple[Array, Array]
) -> tuple[Array, Array]:
    r"""Compose two affine steps :math:`x \mapsto a x + b`: first :math:`(a_1, b_1)`,
    then :math:`(a_2, b_2)` gives :math:`(a_2 a_1,\ a_2 b_1 + b_2)`. Associative."""
    a1, b1 = first
    a2, b2 = then
    return a2 * a1, a2 * b1 + b2


def scan_parallel(A_bar: Array, Bu: Array) -> Array:
    """The states of :func:`scan_sequential`, by an associative (prefix) scan."""
    _, xs = jax.lax.associative_scan(combine, (A_bar, Bu))
    return xs


SCANS = {"sequential": scan_sequential, "parallel": scan_parallel}


def _selective_scan_args(
    u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any = None,
    method: str = "sequential", b_rule: str = "euler",
) -> tuple:  # fmt: skip
    u = _check.as_array("u", u)
    if u.ndim != 2:
        raise ValueError(f"u: expected shape (L, D_in), got {u.shape}")
    L, d_in = u.shape
    if L < 1:
        raise ValueError("u: expected at least one time step (L >= 1), got L = 0")
    delta = _check.as_array("delta", delta)
    if delta.shape != u.shape:
        raise ValueError(f"delta: expected the shape of u {u.shape}, got {delta.shape}")
    A = _check.as_array("A", A)
    if A.ndim != 2 or A.shape[0] != d_in or jnp.iscomplexobj(A):
        raise ValueError(f"A: expected a real array of shape (D_in, N) with D_in={d_in}, got {A.shape}")
    n = A.shape[1]
    for name, M in (("B", B), ("C", C)):
        M = _check.as_array(name, M)
        if M.shape != (L, n):
            raise ValueError(f"{name}: expected shape (L, N) = {(L, n)}, got {M.shape}")
    D = jnp.zeros((d_in,)) if D is None else _check.vector("D", D, d_in, what="D_in")
    method = _check.choice("method", method, METHODS)
    b_rule = _check.choice("b_rule", b_rule, B_RULES)
    dtype = jnp.result_type(u, delta, A, B, C, D, float)
    arrays = (jnp.asarray(x, dtype) for x in (u, delta, A, B, C, D))
    return (*arrays, method, b_rule)


@_check.checked(_selective_scan_args)
def selective_scan(
    u: Array, delta: Array, A: Array, B: Array, C: Array, D: Array | None = None,
    method: str = "sequential", b_rule: str = "euler",
) -> Array:  # fmt: skip
    r"""The selective SSM: ``u, delta (L, D_in)``, ``A (D_in, N)`` real,
    ``B, C (L, N)``, ``D (D_in,)`` or None → ``y (L, D_in)``,
    :math:`y_t = x_t C_t + D \odot u_t`.

    ``method``: ``"sequential"`` (:func:`scan_sequential`) or ``"parallel"``
    (:func:`scan_parallel`); ``b_rule``: ``"euler"`` (Mamba's, default) or ``"zoh"``.
    """
    A_bar, Bu = discretize_selective(u, delta, A, B, b_rule)
    xs = SCANS[method](A_bar, Bu)  # (L, D_in, N)
    return jnp.einsum("ldn,ln->ld", xs, C) + D * u
