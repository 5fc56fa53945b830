r"""The recurrent view: a discrete SSM is an RNN with a linear cell.

.. math::
    x_k = \bar A x_{k-1} + \bar B u_k, \qquad y_k = C x_k, \qquad x_{-1} = x_0\text{ (default 0)}
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


def scan_ssm(Ab: Any, Bb: Any, C: Any, u: Any, x0: Any | None = None) -> tuple[Array, Array]:
    r"""Run the discrete SSM over ``u`` with ``jax.lax.scan``: O(N²) work per step.

    Args:
        Ab: ``(N, N)``.  Bb: ``(N,)``.  C: ``(N,)``.  u: ``(L,)``.  x0: ``(N,)`` state before the
        first input (zeros if omitted).

    Returns:
        ``(y, states)`` with ``y (L,)``, ``y_k = C x_k``, and ``states (L, N)`` holding ``x_0 … x_{L-1}``.
    """
    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    Bb = _check.vector("Bb", Bb, n)
    C = _check.vector("C", C, n)
    u = _check.vector("u", u, what="L")
    dtype = jnp.result_type(Ab, Bb, C, u, float)
    x_init = jnp.zeros(n, dtype) if x0 is None else jnp.asarray(_check.vector("x0", x0, n), dtype)
    return _scan(Ab, Bb, C, u.astype(dtype), x_init)


@jax.jit
def _scan(Ab: Array, Bb: Array, C: Array, u: Array, x_init: Array) -> tuple[Array, Array]:
    # Compiled once per shape and dtype: calling scan_ssm again with new values does not retrace.
    def step(x, u_k):
        x = Ab @ x + Bb * u_k
        return x, x

    _, states = jax.lax.scan(step, x_init, u)
    return states @ C, states
