r"""The recurrent view: a discrete SSM is an RNN with a linear cell.

.. math::
    x_k = \bar A x_{k-1} + \bar B u_k, \qquad y_k = C x_k, \qquad
    x_{-1} = x_0\ \text{(default 0)}
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


def _scan_ssm_args(Ab: Any, Bb: Any, C: Any, u: Any, x0: Any | None = None) -> tuple:
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    u = _check.vector("u", u, what="L")
    dtype = jnp.result_type(Ab, Bb, C, u, float)
    x0 = jnp.zeros(n, dtype) if x0 is None else _check.vector("x0", x0, n).astype(dtype)
    return Ab.astype(dtype), Bb.astype(dtype), C.astype(dtype), u.astype(dtype), x0


@_check.checked(_scan_ssm_args)
@jax.jit  # compiled once per shape and dtype
def scan_ssm(
    Ab: Array, Bb: Array, C: Array, u: Array, x0: Array | None = None
) -> tuple[Array, Array]:
    r"""Run the discrete SSM over ``u`` with ``jax.lax.scan``: O(N²) work per step.

    .. math::
        x_k = \bar A x_{k-1} + \bar B u_k, \qquad y_k = C x_k

    Args: ``Ab (N, N)``, ``Bb (N,)``, ``C (N,)``, ``u (L,)``, ``x0 (N,)`` the state
    before the first input (zeros if omitted). Returns ``(y, states)``: ``y (L,)`` and
    ``states (L, N)`` = x_0 … x_{L-1}.
    """

    def step(x, u_k):
        x = Ab @ x + Bb * u_k
        return x, x

    _, states = jax.lax.scan(step, x0, u)
    return states @ C, states
