r"""Theorem 2: the bilinear recurrence of a DPLR SSM in O(N) per step.

For :math:`A = \operatorname{diag}\Lambda - P Q^*` the bilinear matrices factor as
:math:`\bar A = A_1 A_0` and :math:`\bar B = 2 A_1 B` with

.. math::
    A_0 &= \tfrac{2}{\Delta} I + A
        = \operatorname{diag}(\tfrac{2}{\Delta} + \Lambda) - P Q^*, \\
    A_1 &= (\tfrac{2}{\Delta} I - A)^{-1} = D - D P (I_r + Q^* D P)^{-1} Q^* D,

:math:`D = \operatorname{diag}\big(1/(\tfrac{2}{\Delta} - \Lambda_i)\big)`. Both factors
are diagonal plus rank r, so applying :math:`\bar A` to a vector costs O(N r) and the
dense N × N matrix never exists.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


class DiscreteDPLR(NamedTuple):
    """The structured bilinear discretization: what applies Ā and B̄ in O(N r)."""

    A0_diag: Array  # (N,)  2/Δ + Λ
    D: Array  # (N,)  1 / (2/Δ − Λ)
    P: Array  # (r, N)
    Q: Array  # (r, N)
    R: Array  # (r, r)  (I + Q* D P)^{-1}
    Bb: Array  # (N,)  2 A1 B


def _discrete_dplr_args(Lambda: Any, P: Any, Q: Any, B: Any, step: Any) -> tuple:
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    B = _check.vector("B", B, Lambda.shape[0])
    step = _check.step_size("step", step)
    dtype = jnp.result_type(Lambda, P, Q, B, 1j)
    return (*(jnp.asarray(x, dtype) for x in (Lambda, P, Q, B)), step)


@_check.checked(_discrete_dplr_args)
def discrete_dplr(
    Lambda: Array, P: Array, Q: Array, B: Array, step: Array
) -> DiscreteDPLR:
    r"""Bilinear discretization of :math:`(\operatorname{diag}\Lambda - PQ^*, B)`, kept
    DPLR.

    .. math::
        A_0 = \operatorname{diag}(\tfrac{2}{\Delta} + \Lambda) - PQ^*, \quad
        D = \operatorname{diag}\frac{1}{\tfrac{2}{\Delta} - \Lambda_i}, \quad
        R = (I_r + Q^* D P)^{-1}, \quad \bar B = 2 A_1 B

    (Theorem 2.) ``Lambda (N,)``; ``P, Q (N,)`` or ``(r, N)``; ``B (N,)``; ``step``.
    """
    A0_diag = 2.0 / step + Lambda
    D = 1.0 / (2.0 / step - Lambda)
    R = jnp.linalg.inv(jnp.eye(P.shape[0], dtype=Lambda.dtype) + (Q.conj() * D) @ P.T)
    disc = DiscreteDPLR(A0_diag, D, P, Q, R, jnp.zeros_like(B))
    return disc._replace(Bb=2.0 * apply_A1(disc, B))


def _require_disc(disc: Any) -> DiscreteDPLR:
    if not isinstance(disc, DiscreteDPLR):
        raise ValueError(
            "disc: expected a DiscreteDPLR (from discrete_dplr), "
            f"got {type(disc).__name__}"
        )
    return disc


def _state(disc: Any, name: str, x: Any) -> Array:
    """``disc`` must be a :class:`DiscreteDPLR` and ``x`` a state vector of its size."""
    return _check.vector(name, x, _require_disc(disc).A0_diag.shape[-1])


def _apply_A0_args(disc: Any, x: Any) -> tuple[DiscreteDPLR, Array]:
    return disc, _state(disc, "x", x)


def _apply_A1_args(disc: Any, y: Any) -> tuple[DiscreteDPLR, Array]:
    return disc, _state(disc, "y", y)


@_check.checked(_apply_A0_args)
def apply_A0(disc: DiscreteDPLR, x: Array) -> Array:
    r"""Apply :math:`A_0` in O(N r); ``x (N,)`` → ``(N,)``.

    .. math::
        A_0 x = (\tfrac{2}{\Delta} + \Lambda) \odot x - P^\top (Q^* x)
    """
    return disc.A0_diag * x - disc.P.T @ (disc.Q.conj() @ x)


@_check.checked(_apply_A1_args)
def apply_A1(disc: DiscreteDPLR, y: Array) -> Array:
    r"""Apply :math:`A_1 = (\tfrac{2}{\Delta} I - A)^{-1}` in O(N r); ``y (N,)``.

    By the Woodbury identity,

    .. math::
        A_1 y = D y - D P R\, Q^* D y
    """
    Dy = disc.D * y
    return Dy - disc.D * (disc.P.T @ (disc.R @ (disc.Q.conj() @ Dy)))


def _dplr_step_args(disc: Any, x: Any, u_k: Any) -> tuple[DiscreteDPLR, Array, Array]:
    return disc, _state(disc, "x", x), _check.scalar("u_k", u_k)


@_check.checked(_dplr_step_args)
def dplr_step(disc: DiscreteDPLR, x: Array, u_k: Array) -> Array:
    r"""One recurrent step in O(N r): state ``x (N,)``, scalar input ``u_k`` → ``(N,)``.

    .. math::
        x_k = \bar A x_{k-1} + \bar B u_k = A_1 (A_0 x_{k-1}) + \bar B u_k
    """
    return apply_A1(disc, apply_A0(disc, x)) + disc.Bb * u_k


def _scan_dplr_args(disc: Any, C: Any, u: Any, x0: Any | None = None) -> tuple:
    n = _require_disc(disc).A0_diag.shape[0]
    C = _check.vector("C", C, n)
    u = _check.vector("u", u, what="L")
    dtype = disc.A0_diag.dtype
    x0 = jnp.zeros(n, dtype) if x0 is None else _check.vector("x0", x0, n).astype(dtype)
    return disc, C, u, x0


@_check.checked(_scan_dplr_args)
@jax.jit  # compiled once per shape and dtype
def scan_dplr(
    disc: DiscreteDPLR, C: Array, u: Array, x0: Array | None = None
) -> tuple[Array, Array]:
    r"""The RNN view of a DPLR SSM, complex ``(y (L,), states (L, N))``.

    .. math::
        x_k = A_1 (A_0 x_{k-1}) + \bar B u_k, \qquad y_k = C x_k

    ``C (N,)``, ``u (L,)``, ``x0 (N,)`` the state before the first input (zeros if
    omitted).
    """

    def step(x, u_k):
        x = dplr_step(disc, x, u_k)
        return x, x

    _, states = jax.lax.scan(step, x0, u)
    return states @ C, states


def _dense_from_discrete_args(disc: Any) -> tuple[DiscreteDPLR]:
    return (_require_disc(disc),)


@_check.checked(_dense_from_discrete_args)
def dense_from_discrete(disc: DiscreteDPLR) -> tuple[Array, Array]:
    """``(Ab (N, N), Bb (N,))`` from the structured form (for tests and pictures only).

    Column j of Ā is :math:`A_1 (A_0 e_j)`.
    """
    I = jnp.eye(disc.A0_diag.shape[0], dtype=disc.A0_diag.dtype)
    Ab = jax.vmap(lambda e: apply_A1(disc, apply_A0(disc, e)), in_axes=1, out_axes=1)(I)
    return Ab, disc.Bb
