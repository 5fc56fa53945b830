r"""HiPPO matrices and their normal-plus-low-rank (NPLR) and diagonal-plus-low-rank (DPLR) forms.

Sign convention: x' = A x + B u, so every A here is *stable* (eigenvalues in the left half-plane).
Matrices are built once, in float64 NumPy (they are initializations, never traced).

* **LegS** (scaled Legendre, S4's default):
  :math:`A_{nk} = -\sqrt{2n+1}\sqrt{2k+1}` for n > k, :math:`-(n+1)` for n = k, 0 for n < k;
  :math:`B_n = \sqrt{2n+1}`.
* **LegT** (translated Legendre, a sliding window of length θ = 1):
  :math:`A_{nk} = -\sqrt{2n+1}\sqrt{2k+1}` for n ≥ k and :math:`-(-1)^{n-k}\sqrt{2n+1}\sqrt{2k+1}`
  for n < k; :math:`B_n = \sqrt{2n+1}`.
* **LagT** (translated Laguerre): :math:`A = I/2 - \text{tril}(\mathbf 1)`, :math:`B = \mathbf 1`.

Theorem 1 of the paper: each is *normal plus low rank*, :math:`A = S - P P^\top` with S normal
(here S = c·I + a skew-symmetric matrix), of rank 1 (LegS, LagT) or rank 2 (LegT).
"""

from __future__ import annotations

import numpy as np

from . import _check

MEASURES = ("legs", "legt", "lagt")


def _size(N: int) -> int:
    return _check.length("N", N)


def make_hippo(N: int, measure: str = "legs") -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO state matrix and input vector ``(A (N, N), B (N,))`` for x' = Ax + Bu (float64)."""
    N = _size(N)
    measure = _check.choice("measure", measure, MEASURES)
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    row, col = np.meshgrid(n, n, indexing="ij")
    if measure == "legs":
        A = np.where(row > col, r[:, None] * r[None, :], 0.0) + np.diag(n + 1)
        return -A, r.copy()
    if measure == "legt":
        sign = np.where(row >= col, 1.0, (-1.0) ** (row - col))
        return -sign * r[:, None] * r[None, :], r.copy()
    A = np.eye(N) / 2 - np.tril(np.ones((N, N)))
    return A, np.ones(N)


def low_rank_term(N: int, measure: str = "legs") -> np.ndarray:
    """The factor P with A = S − P Pᵀ: shape ``(N,)`` for LegS/LagT (rank 1), ``(2, N)`` for LegT."""
    N = _size(N)
    measure = _check.choice("measure", measure, MEASURES)
    n = np.arange(N, dtype=np.float64)
    if measure == "legs":
        return np.sqrt(n + 0.5)
    if measure == "legt":
        r = np.sqrt(2 * n + 1)
        even = np.where(n % 2 == 0, r, 0.0)
        odd = np.where(n % 2 == 1, r, 0.0)
        return np.stack([even, odd])
    return np.full(N, np.sqrt(0.5))


def make_nplr(N: int, measure: str = "legs") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Theorem 1: ``(S, P, B)`` with :math:`A = S - \sum_r P_r P_r^\top` and S normal.

    ``P`` is ``(N,)`` for rank 1 (LegS, LagT) and ``(2, N)`` for rank 2 (LegT).
    """
    A, B = make_hippo(N, measure)
    P = low_rank_term(N, measure)
    P2 = P[None, :] if P.ndim == 1 else P
    S = A + P2.T @ P2
    return S, P, B


def make_dplr(
    N: int, measure: str = "legs"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Diagonalize the normal part: ``(Lambda, P, B, V)``, all complex128.

    With :math:`S = V \operatorname{diag}(\Lambda) V^*` (V unitary, found stably because S is
    normal: :math:`S = cI + W` with W skew-symmetric, and :math:`-iW` is Hermitian),

    .. math::
        A = V\,(\operatorname{diag}\Lambda - \tilde P \tilde P^*)\,V^*, \quad
        \tilde P = V^* P, \quad \tilde B = V^* B.

    Returned ``P`` and ``B`` are these :math:`\tilde P` (``(N,)`` or ``(2, N)``) and :math:`\tilde B`.
    Eigenvalues are sorted by imaginary part (conjugate pairs sit symmetrically).
    """
    S, P, B = make_nplr(N, measure)
    c = np.mean(np.diag(S))
    W = S - c * np.eye(S.shape[0])
    if not np.allclose(W, -W.T, atol=1e-9 * max(1.0, np.abs(W).max())):
        raise AssertionError("normal part is not c·I + skew-symmetric")  # pragma: no cover
    evals, V = np.linalg.eigh(-1j * W)  # Hermitian: real eigenvalues, unitary V
    Lambda = c + 1j * evals
    Vh = V.conj().T
    P_t = (Vh @ P.T).T if P.ndim == 2 else Vh @ P
    return Lambda, P_t, Vh @ B, V


def dplr_to_dense(Lambda: np.ndarray, P: np.ndarray, Q: np.ndarray | None = None) -> np.ndarray:
    r"""The dense matrix :math:`\operatorname{diag}(\Lambda) - \sum_r P_r Q_r^*` (``Q = P`` if omitted)."""
    Lambda = np.asarray(Lambda)
    if Lambda.ndim != 1 or Lambda.shape[0] < 1:
        raise ValueError(f"Lambda: expected a vector of shape (N,), got shape {Lambda.shape}")
    n = Lambda.shape[0]
    P = np.atleast_2d(np.asarray(P))
    if P.ndim != 2 or P.shape[1] != n:
        raise ValueError(f"P: expected shape (N,) or (r, N) with N={n}, got shape {np.shape(P)}")
    Q = P if Q is None else np.atleast_2d(np.asarray(Q))
    if Q.shape != P.shape:
        raise ValueError(f"Q: expected the shape of P {P.shape}, got {Q.shape}")
    return np.diag(Lambda) - P.T @ Q.conj()


def eigenvector_condition(N: int, measure: str = "legs") -> float:
    r"""Condition number :math:`\kappa(V) = \|V\|_2 \|V^{-1}\|_2` of the eigenvector matrix of A.

    For LegS the eigenvalues are −1, −2, …, −N (A is triangular), and V's condition number grows
    exponentially in N — the reason S4 cannot simply diagonalize HiPPO (Lemma 3.2 of the paper).
    """
    A, _ = make_hippo(N, measure)
    _, V = np.linalg.eig(A)
    return float(np.linalg.cond(V))
