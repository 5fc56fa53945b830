r"""Theorem 2: the bilinear recurrence of a DPLR SSM in O(N) per step.

For :math:`A = \operatorname{diag}\Lambda - P Q^*` the bilinear matrices factor as
:math:`\bar A = A_1 A_0` and :math:`\bar B = 2 A_1 B` with

.. math::
    A_0 = \tfrac{2}{\Delta} I + A = \operatorname{diag}(\tfrac{2}{\Delta} + \Lambda) - P Q^*, \qquad
    A_1 = (\tfrac{2}{\Delta} I - A)^{-1} = D - D P (I_r + Q^* D P)^{-1} Q^* D,

:math:`D = \operatorname{diag}\big(1/(\tfrac{2}{\Delta} - \Lambda_i)\big)`. Both factors are diagonal plus
rank r, so applying :math:`\bar A` to a vector costs O(N r) and the dense N × N matrix never exists.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


class DiscreteDPLR(NamedTuple):
    """The structured bilinear discretization: everything needed to apply Ā and B̄ in O(N r)."""

    A0_diag: Array  # (N,)  2/Δ + Λ
    D: Array  # (N,)  1 / (2/Δ − Λ)
    P: Array  # (r, N)
    Q: Array  # (r, N)
    R: Array  # (r, r)  (I + Q* D P)^{-1}
    Bb: Array  # (N,)  2 A1 B


def discrete_dplr(Lambda: Any, P: Any, Q: Any, B: Any, step: Any) -> DiscreteDPLR:
    """Bilinear discretization of ``(diag(Lambda) - P^T Q̄, B)`` kept in DPLR form (Theorem 2)."""
    Lambda, P, Q = _check.dplr("Lambda", Lambda, "P", P, "Q", Q)
    n = Lambda.shape[0]
    B = _check.vector("B", B, n)
    _check.step_size("step", step)
    dtype = jnp.result_type(Lambda, P, Q, B, 1j)
    Lambda, P, Q, B = (jnp.asarray(x, dtype) for x in (Lambda, P, Q, B))
    A0_diag = 2.0 / step + Lambda
    D = 1.0 / (2.0 / step - Lambda)
    R = jnp.linalg.inv(jnp.eye(P.shape[0], dtype=dtype) + (Q.conj() * D) @ P.T)
    disc = DiscreteDPLR(A0_diag, D, P, Q, R, jnp.zeros_like(B))
    return disc._replace(Bb=2.0 * apply_A1(disc, B))


def _require_disc(disc: Any) -> DiscreteDPLR:
    if not isinstance(disc, DiscreteDPLR):
        raise ValueError(f"disc: expected a DiscreteDPLR (from discrete_dplr), got {type(disc).__name__}")
    return disc


def _state(disc: Any, name: str, x: Any) -> Array:
    """Check ``disc`` is a :class:`DiscreteDPLR` and ``x`` a state vector of its size N."""
    return _check.vector(name, x, _require_disc(disc).A0_diag.shape[-1])


def apply_A0(disc: DiscreteDPLR, x: Array) -> Array:
    r""":math:`A_0 x = (\tfrac{2}{\Delta} + \Lambda) \odot x - P^\top (\bar Q x)`, O(N r)."""
    x = _state(disc, "x", x)
    return disc.A0_diag * x - disc.P.T @ (disc.Q.conj() @ x)


def apply_A1(disc: DiscreteDPLR, y: Array) -> Array:
    r""":math:`A_1 y = D y - D P R\, Q^* D y` (Woodbury), O(N r)."""
    y = _state(disc, "y", y)
    Dy = disc.D * y
    return Dy - disc.D * (disc.P.T @ (disc.R @ (disc.Q.conj() @ Dy)))


def dplr_step(disc: DiscreteDPLR, x: Array, u_k: Array) -> Array:
    r"""One recurrent step :math:`x_k = A_1 (A_0 x_{k-1}) + \bar B u_k` in O(N r)."""
    x = _state(disc, "x", x)
    u_k = _check.scalar("u_k", u_k)
    return apply_A1(disc, apply_A0(disc, x)) + disc.Bb * u_k


def scan_dplr(disc: DiscreteDPLR, C: Any, u: Any, x0: Any | None = None) -> tuple[Array, Array]:
    """The RNN view of a DPLR SSM: ``(y (L,), states (L, N))`` with ``y_k = C x_k`` (complex)."""
    _require_disc(disc)
    n = disc.A0_diag.shape[0]
    C = _check.vector("C", C, n)
    u = _check.vector("u", u, what="L")
    x_init = jnp.zeros(n, disc.A0_diag.dtype) if x0 is None else jnp.asarray(_check.vector("x0", x0, n), disc.A0_diag.dtype)
    return _scan_dplr(disc, C, u, x_init)


@jax.jit
def _scan_dplr(disc: DiscreteDPLR, C: Array, u: Array, x_init: Array) -> tuple[Array, Array]:
    # Compiled once per shape: calling scan_dplr again with new values does not retrace.
    def step(x, u_k):
        x = dplr_step(disc, x, u_k)
        return x, x

    _, states = jax.lax.scan(step, x_init, u)
    return states @ C, states


def dense_from_discrete(disc: DiscreteDPLR) -> tuple[Array, Array]:
    """Materialize ``(Ab (N, N), Bb (N,))`` from the structured form — for tests and pictures only."""
    _require_disc(disc)
    eye = jnp.eye(disc.A0_diag.shape[0], dtype=disc.A0_diag.dtype)
    Ab = jax.vmap(lambda col: apply_A1(disc, apply_A0(disc, col)), in_axes=1, out_axes=1)(eye)
    return Ab, disc.Bb
