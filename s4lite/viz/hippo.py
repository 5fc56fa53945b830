r"""A random stable matrix with a chosen range of eigenvalue real parts (chapters 3 and 4)."""

from __future__ import annotations

import numpy as np

from .. import _check


def random_stable_matrix(N: int, re_min: float, re_max: float, seed: int = 0) -> np.ndarray:
    r"""A Gaussian matrix moved and scaled so that its eigenvalues' real parts span exactly [re_min, re_max].

    :math:`A = aG + bI` with :math:`G_{ij} \sim \mathcal N(0, 1/N)`; a > 0 and b are chosen so that
    :math:`\min\operatorname{Re}\lambda(A) = ` ``re_min`` and :math:`\max\operatorname{Re}\lambda(A) =` ``re_max``.
    """
    N = _check.length("N", N)
    if N < 2:
        raise ValueError(f"N: expected an integer >= 2 (a range of eigenvalues needs two), got {N}")
    re_min, re_max = float(re_min), float(re_max)
    if not (re_min < re_max < 0):
        raise ValueError(f"re_min, re_max: expected re_min < re_max < 0, got {re_min}, {re_max}")
    G = np.random.default_rng(seed).standard_normal((N, N)) / np.sqrt(N)
    re = np.linalg.eigvals(G).real
    a = (re_max - re_min) / (re.max() - re.min())
    b = re_max - a * re.max()
    return a * G + b * np.eye(N)
