r"""Continuous-time state space models.

.. math::
    x'(t) = A x(t) + B u(t), \qquad y(t) = C x(t) + D u(t)

with state ``x (N,)``, scalar input ``u`` and scalar output ``y`` (single input, single
output).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from . import _check

Array = jax.Array


def _foh_matrices_args(A: Any, B: Any, dt: Any) -> tuple[Array, Array, Any]:
    A = _check.square_matrix("A", A)
    B = _check.vector("B", B, A.shape[0])
    return A, B, _check.step_size("dt", dt)


@_check.checked(_foh_matrices_args)
def foh_matrices(A: Array, B: Array, dt: Array) -> tuple[Array, Array, Array]:
    r"""Exact transition over one interval of length ``dt`` when ``u`` is linear on it.

    With :math:`u(t_k + s) = u_k + (u_{k+1} - u_k)\, s/\Delta` (first-order hold, as
    ``scipy.signal.lsim``),

    .. math::
        x_{k+1} = \Phi x_k + \Gamma_0 u_k + \Gamma_1 u_{k+1},

    read off one matrix exponential of an augmented matrix:

    .. math::
        \exp\begin{pmatrix} A\Delta & B\Delta & 0\\ 0 & 0 & 1\\ 0&0&0\end{pmatrix}
        = \begin{pmatrix}\Phi & M_0 & M_1\\ \cdot&\cdot&\cdot\end{pmatrix}, \qquad
        \Gamma_1 = M_1, \quad \Gamma_0 = M_0 - M_1.

    Shapes: ``A (N, N)``, ``B (N,)``, ``dt`` scalar → ``Phi (N, N)``, ``Γ0 (N,)``,
    ``Γ1 (N,)``.
    """
    n = A.shape[0]
    M = jnp.zeros((n + 2, n + 2), dtype=jnp.result_type(A, B, dt))
    M = M.at[:n, :n].set(A * dt).at[:n, n].set(B * dt).at[n, n + 1].set(1.0)
    E = expm(M)
    Phi, M0, M1 = E[:n, :n], E[:n, n], E[:n, n + 1]
    return Phi, M0 - M1, M1


def _simulate_args(
    A: Any, B: Any, C: Any, D: Any, u: Any, t: Any, x0: Any | None = None
) -> tuple[Array, ...]:
    A = _check.square_matrix("A", A)
    n = A.shape[0]
    B = _check.vector("B", B, n)
    C = _check.vector("C", C, n)
    D = _check.scalar("D", D)
    u = _check.vector("u", u, what="L")
    t = _check.vector("t", t, u.shape[0], what="L (the length of u)")
    dtype = _check.float_dtype(A, B, C, D, u, t)
    A, B, C, D, u, t = (jnp.asarray(v, dtype) for v in (A, B, C, D, u, t))
    if _check.is_concrete(t) and t.shape[0] > 1 and not bool(jnp.all(jnp.diff(t) > 0)):
        raise ValueError("t: expected strictly increasing sample times")
    x0 = jnp.zeros(n, dtype) if x0 is None else _check.vector("x0", x0, n).astype(dtype)
    return A, B, C, D, u, t, x0


@_check.checked(_simulate_args)
@jax.jit  # compiled once per shape and dtype
def simulate(
    A: Array, B: Array, C: Array, D: Array, u: Array, t: Array, x0: Array | None = None
) -> tuple[Array, Array]:
    r"""Response of the continuous SSM to samples ``u`` taken at increasing times ``t``.

    Between samples the input is taken to be linear (first-order hold), and each
    interval is integrated *exactly* with a matrix exponential (:func:`foh_matrices`),
    so the only error is the interpolation of ``u`` (the convention of
    ``scipy.signal.lsim``):

    .. math::
        x(t_{k+1}) = \Phi_k x(t_k) + \Gamma_{0,k} u_k + \Gamma_{1,k} u_{k+1}, \qquad
        y(t_k) = C x(t_k) + D u_k.

    Args: ``A (N, N)``, ``B (N,)``, ``C (N,)``, ``D`` scalar, ``u (L,)`` input samples,
    ``t (L,)`` strictly increasing times, ``x0 (N,)`` the state at ``t_0`` (zeros if
    omitted). Returns ``(y (L,), x (L, N))``.
    """
    Phi, G0, G1 = jax.vmap(foh_matrices, in_axes=(None, None, 0))(A, B, jnp.diff(t))

    def step(x, inputs):
        Phi_k, G0_k, G1_k, u_k, u_next = inputs
        x_next = Phi_k @ x + G0_k * u_k + G1_k * u_next
        return x_next, x_next

    _, xs = jax.lax.scan(step, x0, (Phi, G0, G1, u[:-1], u[1:]))
    x = jnp.concatenate([x0[None, :], xs], axis=0)
    return x @ C + D * u, x
