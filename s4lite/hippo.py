r"""HiPPO matrices, normal plus low rank (NPLR) and diagonal plus low rank (DPLR).

Sign convention: x' = A x + B u, so every A here is *stable* (eigenvalues in the left
half-plane). Matrices are built once, in float64 NumPy (they are initializations, never
traced).

* **LegS** (scaled Legendre, S4's default): :func:`legs`;
* **LegT** (translated Legendre, a sliding window of length θ = 1): :func:`legt`;
* **LagT** (translated Laguerre): :func:`lagt`.

Theorem 1 of the paper: each is *normal plus low rank*, :math:`A = S - P^\top P` with S
normal (here S = c·I + a skew-symmetric matrix) and P of rank 1 (LegS, LagT) or 2
(LegT).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _check

MEASURES = ("legs", "legt", "lagt")


def _size_args(N: Any) -> tuple[int]:
    return (_check.length("N", N),)


def _measure_args(N: Any, measure: Any = "legs") -> tuple[int, str]:
    return _check.length("N", N), _check.choice("measure", measure, MEASURES)


@_check.checked(_size_args)
def legs(N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LegS (scaled Legendre), S4's default: ``A (N, N)``, ``B (N,)``, float64.

    .. math::
        A_{nk} = -\begin{cases} \sqrt{2n+1}\,\sqrt{2k+1} & n > k \\
                                n + 1 & n = k \\
                                0 & n < k \end{cases}, \qquad B_n = \sqrt{2n+1}
    """
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    A = -(np.where(n[:, None] > n[None, :], np.outer(r, r), 0.0) + np.diag(n + 1))
    return A, r


@_check.checked(_size_args)
def legt(N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LegT (translated Legendre, window θ = 1): ``A (N, N)``, ``B (N,)``.

    .. math::
        A_{nk} = -\sqrt{2n+1}\,\sqrt{2k+1}\,\begin{cases} 1 & n \ge k \\
                                                   (-1)^{n-k} & n < k \end{cases},
        \qquad B_n = \sqrt{2n+1}
    """
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    sign = np.where(n[:, None] >= n[None, :], 1.0, (-1.0) ** (n[:, None] - n[None, :]))
    return -sign * np.outer(r, r), r


@_check.checked(_size_args)
def lagt(N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LagT (translated Laguerre): ``A (N, N)``, ``B (N,)``, float64.

    .. math::
        A_{nk} = \begin{cases} -\tfrac12 & n = k \\ -1 & n > k \\ 0 & n < k \end{cases}
        \quad\bigl(A = \tfrac12 I - \operatorname{tril}(\mathbf 1)\bigr),
        \qquad B_n = 1
    """
    return np.eye(N) / 2 - np.tril(np.ones((N, N))), np.ones(N)


@_check.checked(_measure_args)
def make_hippo(N: int, measure: str = "legs") -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO pair ``(A (N, N), B (N,))`` of x' = Ax + Bu for a measure (float64).

    ``measure`` is ``"legs"``, ``"legt"`` or ``"lagt"`` (any case): :func:`legs`,
    :func:`legt`, :func:`lagt`.
    """
    return {"legs": legs, "legt": legt, "lagt": lagt}[measure](N)


@_check.checked(_measure_args)
def low_rank_term(N: int, measure: str = "legs") -> np.ndarray:
    r"""Theorem 1's factor P in :math:`A = S - P^\top P`: ``(N,)``, for LegT ``(2, N)``.

    .. math::
        \text{LegS: } P_n = \sqrt{n + \tfrac12}, \qquad
        \text{LagT: } P_n = \sqrt{\tfrac12}, \qquad
        \text{LegT: } P = \bigl(\sqrt{2n+1}\,[n \text{ even}],\
                               \sqrt{2n+1}\,[n \text{ odd}]\bigr)
    """
    n = np.arange(N, dtype=np.float64)
    if measure == "legs":
        return np.sqrt(n + 0.5)
    if measure == "lagt":
        return np.full(N, np.sqrt(0.5))
    r = np.sqrt(2 * n + 1)
    return np.stack([np.where(n % 2 == 0, r, 0.0), np.where(n % 2 == 1, r, 0.0)])


@_check.checked(_measure_args)
def make_nplr(
    N: int, measure: str = "legs"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Theorem 1: ``(S (N, N), P, B (N,))`` with :math:`A = S - P^\top P` and S normal.

    ``P`` is ``(N,)`` for rank 1 (LegS, LagT) and ``(2, N)`` for rank 2 (LegT); in
    :math:`P^\top P` a vector counts as one row.
    """
    A, B = make_hippo(N, measure)
    P = low_rank_term(N, measure)
    S = A + np.atleast_2d(P).T @ np.atleast_2d(P)
    return S, P, B


def _scalar_plus_skew(S: np.ndarray) -> tuple[float, np.ndarray]:
    """Split Theorem 1's normal part as ``S = c I + W`` with W skew-symmetric."""
    c = np.mean(np.diag(S))
    W = S - c * np.eye(S.shape[0])
    if not np.allclose(W, -W.T, atol=1e-9 * max(1.0, np.abs(W).max())):
        raise AssertionError("S is not c·I + skew-symmetric")  # pragma: no cover
    return c, W


@_check.checked(_measure_args)
def make_dplr(
    N: int, measure: str = "legs"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Diagonalize the normal part of Theorem 1: ``(Lambda, P, B, V)``, all complex128.

    :math:`S = cI + W` with W skew-symmetric, so :math:`-iW` is Hermitian and
    :math:`S = V \operatorname{diag}(\Lambda) V^*` with V unitary (found stably), and

    .. math::
        A = V\,(\operatorname{diag}\Lambda - \tilde P \tilde P^*)\,V^*, \qquad
        \Lambda = c + i\,\operatorname{eig}(-iW), \quad
        \tilde P = V^* P, \quad \tilde B = V^* B.

    Returns ``Lambda (N,)``, ``P`` = :math:`\tilde P` (``(N,)`` or ``(2, N)``),
    ``B`` = :math:`\tilde B` ``(N,)`` and ``V (N, N)``. Eigenvalues are sorted by
    imaginary part (conjugate pairs sit symmetrically).
    """
    S, P, B = make_nplr(N, measure)
    c, W = _scalar_plus_skew(S)
    evals, V = np.linalg.eigh(-1j * W)  # Hermitian: real eigenvalues, unitary V
    Lambda = c + 1j * evals
    Vh = V.conj().T
    return Lambda, (Vh @ P.T).T, Vh @ B, V  # (Vh @ P.T).T applies V* to each row of P


def _dplr_to_dense_args(Lambda: Any, P: Any, Q: Any | None = None) -> tuple:
    Lambda = np.asarray(Lambda)
    if Lambda.ndim != 1 or Lambda.shape[0] < 1:
        shape = Lambda.shape
        raise ValueError(f"Lambda: expected a vector of shape (N,), got shape {shape}")
    n = Lambda.shape[0]
    P = np.atleast_2d(np.asarray(P))
    if P.ndim != 2 or P.shape[1] != n:
        raise ValueError(
            f"P: expected shape (N,) or (r, N) with N={n}, got shape {np.shape(P)}"
        )
    Q = P if Q is None else np.atleast_2d(np.asarray(Q))
    if Q.shape != P.shape:
        raise ValueError(f"Q: expected the shape of P {P.shape}, got {Q.shape}")
    return Lambda, P, Q


@_check.checked(_dplr_to_dense_args)
def dplr_to_dense(
    Lambda: np.ndarray, P: np.ndarray, Q: np.ndarray | None = None
) -> np.ndarray:
    r"""The dense ``(N, N)`` matrix
    :math:`\operatorname{diag}(\Lambda) - \sum_r P_r Q_r^*`.

    ``Lambda (N,)``; ``P`` and ``Q`` of shape ``(N,)`` or ``(r, N)`` (``Q = P`` if
    omitted).
    """
    return np.diag(Lambda) - P.T @ Q.conj()


@_check.checked(_measure_args)
def eigenvector_condition(N: int, measure: str = "legs") -> float:
    r"""Condition number :math:`\kappa(V) = \|V\|_2 \|V^{-1}\|_2` of A's eigenvectors.

    For LegS the eigenvalues are −1, −2, …, −N (A is triangular), and V's condition
    number grows exponentially in N — the reason S4 cannot simply diagonalize HiPPO
    (Lemma 3.2 of the paper).
    """
    A, _ = make_hippo(N, measure)
    _, V = np.linalg.eig(A)
    return float(np.linalg.cond(V))
