r"""Helpers for chapters 5–7: why not diagonalize, the fast DPLR kernel, and the recurrent view.

Three groups, each a set of small functions that return numbers or a matplotlib Figure:

* **Diagonalization (chapter 5).** For :math:`A = V \operatorname{diag}(\lambda) V^{-1}` the bilinear
  kernel is a Vandermonde product,
  :math:`\bar K_j = \sum_i (CV)_i\, (V^{-1}\bar B)_i\, \bar\lambda_i^{\,j}`, with
  :math:`\bar\lambda = (1 + \tfrac{\Delta}{2}\lambda)/(1 - \tfrac{\Delta}{2}\lambda)`.
  :func:`kernel_diagonalized` computes it in a chosen precision, :func:`reconstruction_error` measures
  :math:`\|V \operatorname{diag}(\lambda) V^{-1} - A\|_F / \|A\|_F`, :func:`growth_rate` fits
  :math:`\text{value} \approx c \cdot 2^{\,\text{rate}\cdot N}`.
* **Benchmark files (chapter 6).** :func:`load_bench` reads and checks a ``kernel_*.json`` written by the
  benchmark script; :func:`plot_bench_single` and :func:`plot_bench_batched` draw it.
* **Recurrent timings and generation (chapter 7).** :func:`seconds_per_step`,
  :func:`recurrence_timings`, :func:`generate_recurrent`, :func:`generate_convolutional`.
"""

from __future__ import annotations

import json
import time
from math import comb
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter

from .. import _check
from ..convolution import causal_conv
from ..dplr_step import DiscreteDPLR, dense_from_discrete, discrete_dplr, dplr_step, scan_dplr
from ..recurrence import scan_ssm

# --------------------------------------------------------------------------------------------------
# Chapter 5: diagonalization
# --------------------------------------------------------------------------------------------------


def rel_err(x: Any, ref: Any) -> float:
    r""":math:`\max_j |x_j - \text{ref}_j| / \max_j |\text{ref}_j|`, computed in float64/complex128."""
    x = np.asarray(x, dtype=np.complex128)
    ref = np.asarray(ref, dtype=np.complex128)
    if x.shape != ref.shape:
        raise ValueError(f"x: expected the shape of ref {ref.shape}, got {x.shape}")
    scale = np.max(np.abs(ref))
    if scale == 0:
        raise ValueError("ref: expected a nonzero array (the error is relative to max |ref|)")
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(x - ref)) / scale)


def _real_dtype(dtype: Any) -> type:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dt}")
    return dt.type


def eig_sorted(A: Any, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    r"""Eigendecomposition :math:`A = V \operatorname{diag}(\lambda) V^{-1}` computed in ``dtype``.

    ``A (N, N)`` is cast to ``dtype`` (float32 or float64) *before* LAPACK runs, so the whole
    computation happens in that precision. Returns ``(lam (N,), V (N, N))`` (complex64 or complex128),
    sorted by decreasing real part, then by imaginary part; columns of ``V`` have unit 2-norm.
    """
    A = np.asarray(_check.square_matrix("A", A))
    real = _real_dtype(dtype)
    lam, V = np.linalg.eig(A.astype(real))
    cplx = np.result_type(real, np.complex64)
    order = np.lexsort((lam.imag, -lam.real))
    return lam[order].astype(cplx), V[:, order].astype(cplx)


def unit_diagonal(V: Any) -> np.ndarray:
    r"""Rescale each column of a (triangular) eigenvector matrix so that :math:`V_{kk} = 1`.

    This is the normalization of Lemma 3.2 of the S4 paper: for LegS (lower triangular, eigenvalues
    −1, −2, …, −N in that order) column k is zero above row k, so its diagonal entry is the natural scale.
    """
    V = np.asarray(_check.square_matrix("V", V))
    d = np.diag(V)
    if np.any(d == 0):
        raise ValueError("V: expected a nonzero diagonal (an eigenvector matrix of a triangular A, sorted)")
    return V / d[None, :]


def legs_eigenvectors(N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Closed-form eigendecomposition of the LegS matrix (Lemma 3.2 of the S4 paper, in our scaling).

    .. math::
        \lambda_j = -(j + 1), \qquad
        V_{ij} = (-1)^{i-j} \binom{i+j}{i-j} \frac{\sqrt{2i+1}}{\sqrt{2j+1}} \quad (i \ge j),\ 0 \text{ above}

    (unit diagonal). The binomials are exact Python integers, converted to float64 at the end.
    Returns ``(lam (N,), V (N, N))``, float64.
    """
    N = _check.length("N", N)
    V = np.zeros((N, N))
    for i in range(N):
        for j in range(i + 1):
            V[i, j] = (-1) ** (i - j) * float(comb(i + j, i - j)) * np.sqrt((2 * i + 1) / (2 * j + 1))
    return -np.arange(1.0, N + 1), V


def reconstruction_error(A: Any, dtype: Any = np.float64) -> float:
    r""":math:`\|V \operatorname{diag}(\lambda) V^{-1} - A\|_F / \|A\|_F` with eig, inverse and product all in ``dtype``.

    The error is measured in float64 against the exact float64 ``A``. Overflow in float32 gives ``inf``.
    """
    A = np.asarray(_check.square_matrix("A", A), dtype=np.float64)
    lam, V = eig_sorted(A, dtype)
    with np.errstate(all="ignore"):
        A_rec = (V * lam[None, :]) @ np.linalg.inv(V)
        err = np.linalg.norm(A_rec.astype(np.complex128) - A) / np.linalg.norm(A)
    return float(err) if np.isfinite(err) else float("inf")


def kernel_diagonalized(
    A: Any, B: Any, C: Any, step: float, L: int, dtype: Any = np.float64
) -> np.ndarray:
    r"""The bilinear SSM kernel through the eigendecomposition of A — a Vandermonde product.

    .. math::
        \bar K_j = \sum_i c_i\, b_i\, \bar\lambda_i^{\,j}, \quad
        \bar\lambda_i = \frac{1 + \tfrac{\Delta}{2}\lambda_i}{1 - \tfrac{\Delta}{2}\lambda_i}, \quad
        b = \frac{\Delta\, V^{-1} B}{1 - \tfrac{\Delta}{2}\lambda}, \quad c = C V

    (the bilinear :math:`\bar A = V \operatorname{diag}(\bar\lambda) V^{-1}` and
    :math:`\bar B = V \operatorname{diag}(1 - \tfrac{\Delta}{2}\lambda)^{-1} \Delta V^{-1} B`).
    ``A (N, N)``, ``B (N,)``, ``C (N,)`` real; every operation runs in ``dtype``. Returns the real part,
    shape ``(L,)``, as float64 (``inf``/``nan`` where the computation overflowed).
    """
    A = np.asarray(_check.square_matrix("A", A))
    n = A.shape[0]
    B = np.asarray(_check.vector("B", B, n))
    C = np.asarray(_check.vector("C", C, n))
    _check.positive("step", step)
    L = _check.length("L", L)
    real = _real_dtype(dtype)
    lam, V = eig_sorted(A, real)
    with np.errstate(all="ignore"):
        h = real(step / 2)
        lam_bar = (1 + h * lam) / (1 - h * lam)
        b = real(step) * np.linalg.solve(V, B.astype(real)) / (1 - h * lam)
        c = C.astype(real) @ V
        vandermonde = lam_bar[None, :] ** np.arange(L)[:, None]  # (L, N): λ̄_i^j
        return (vandermonde @ (c * b)).real.astype(np.float64)


def growth_rate(Ns: Sequence[int], values: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log_2(\text{values})` against N: values ≈ c · 2^(rate · N).

    ``Ns`` and ``values`` (positive, finite) have the same length ≥ 2.
    """
    n = np.asarray(Ns, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if n.ndim != 1 or n.shape != v.shape or n.size < 2:
        raise ValueError(f"values: expected the shape of Ns {n.shape} with at least 2 points, got {v.shape}")
    if not np.all(np.isfinite(v)) or not np.all(v > 0):
        raise ValueError("values: expected positive finite numbers (their log2 is fitted)")
    slope, _ = np.polyfit(n, np.log2(v), 1)
    return float(slope)


# --------------------------------------------------------------------------------------------------
# Chapter 6: the truncated generating function, and benchmark files
# --------------------------------------------------------------------------------------------------


def fold_kernel(K: Any, L: int) -> np.ndarray:
    r"""Time-aliasing: :math:`\sum_{m \ge 0} K_{j + mL}` for ``j < L`` (``K`` zero-padded to a multiple of L)."""
    K = np.asarray(_check.vector("K", K, what="M"))
    L = _check.length("L", L)
    m = -(-K.shape[0] // L)
    return np.pad(K, (0, m * L - K.shape[0])).reshape(m, L).sum(axis=0)


def kernel_without_truncation(Ab: Any, Bb: Any, C: Any, L: int) -> jax.Array:
    r"""IFFT of the *untruncated* generating function :math:`C (I - \bar A\omega_k)^{-1} \bar B` at the L roots of unity.

    Without the correction :math:`\tilde C = C(I - \bar A^L)` the inverse FFT returns the infinite kernel
    folded onto L samples, :math:`\sum_{m\ge 0} \bar K_{j+mL}` (see :func:`fold_kernel`). Computed by
    :func:`~s4lite.kernel.kernel_generating_function` with the output vector
    :math:`C' = C (I - \bar A^L)^{-1}`, so that its :math:`\tilde C'` is C. Complex ``(L,)``.
    """
    from ..kernel import kernel_generating_function  # local: the kernel module is chapter 6's subject

    Ab = _check.square_matrix("Ab", Ab)
    n = Ab.shape[0]
    C = _check.vector("C", C, n)
    L = _check.length("L", L)
    dtype = jnp.result_type(Ab, C, 1j)
    M = jnp.eye(n, dtype=dtype) - jnp.linalg.matrix_power(Ab.astype(dtype), L)
    C_prime = jnp.linalg.solve(M.T, C.astype(dtype))  # C' M = C
    return kernel_generating_function(Ab, Bb, C_prime, L)


# --------------------------------------------------------------------------------------------------
# Chapter 6: benchmark files
# --------------------------------------------------------------------------------------------------

_META_KEYS = ("device", "device_kind", "platform", "jax_version", "commit", "date", "command", "dtype")
_SINGLE_KEYS = ("method", "N", "L", "ms")
_BATCHED_KEYS = ("H", "N", "L", "forward_ms", "forward_backward_ms", "peak_bytes", "temp_bytes")


def find_artifact(relpath: str, start: str | Path | None = None) -> Path | None:
    """The first ``<dir>/relpath`` that exists for ``dir`` = ``start`` (default: cwd) and its parents, else None.

    Notebooks run from ``notebooks/`` (the book build) or the repository root; both find
    ``artifacts/bench/...``. In Colab (s4lite installed by pip, no checkout) the answer is None.
    """
    here = Path.cwd() if start is None else Path(start)
    for d in (here, *here.resolve().parents):
        candidate = d / relpath
        if candidate.is_file():
            return candidate
    return None


def _check_rows(name: str, rows: Any, keys: Sequence[str]) -> list[dict]:
    if not isinstance(rows, list):
        raise ValueError(f"{name}: expected a list of records, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{name}[{i}]: expected a record (dict), got {type(row).__name__}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"{name}[{i}]: missing keys {missing}")
    return rows


def check_bench(data: Any) -> dict:
    """Check a benchmark dict against the schema ``{"meta": {...}, "single": [...], "batched": [...]}``.

    ``meta`` needs device, device_kind, platform, jax_version, commit, date, command, dtype;
    each ``single`` row method, N, L, ms; each ``batched`` row H, N, L, forward_ms,
    forward_backward_ms, peak_bytes, temp_bytes (the byte counts may be None where the backend has no
    memory statistics). Raises ``ValueError`` naming what is missing; returns ``data``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"data: expected a dict with keys meta, single, batched, got {type(data).__name__}")
    missing = [k for k in ("meta", "single", "batched") if k not in data]
    if missing:
        raise ValueError(f"data: missing keys {missing}")
    meta = data["meta"]
    if not isinstance(meta, dict):
        raise ValueError(f"meta: expected a dict, got {type(meta).__name__}")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta: missing keys {missing}")
    _check_rows("single", data["single"], _SINGLE_KEYS)
    _check_rows("batched", data["batched"], _BATCHED_KEYS)
    return data


def load_bench(path: str | Path) -> dict:
    """Read a benchmark JSON file and check its schema (see :func:`check_bench`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: expected an existing benchmark JSON file, got {str(path)!r}")
    with path.open(encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"path: {str(path)!r} is not valid JSON ({err})") from err
    return check_bench(data)


def bench_meta_text(data: dict) -> str:
    """The provenance of a benchmark run as ``key: value`` lines.

    Device, JAX version and dtype, date, commit and command first, then any further ``meta`` keys the
    benchmark recorded (in their order).
    """
    meta = check_bench(data)["meta"]
    lines = [
        f"device  : {meta['device']} ({meta['device_kind']}, platform {meta['platform']})",
        f"JAX     : {meta['jax_version']}, dtype {meta['dtype']}",
        f"date    : {meta['date']}",
        f"commit  : {meta['commit']}",
        f"command : {meta['command']}",
    ]
    lines += [f"{key} : {value}" for key, value in meta.items() if key not in _META_KEYS]
    return "\n".join(lines)


def bench_speedups(data: dict) -> list[dict]:
    """For each N: naive and DPLR time at the largest L that both were timed at, and their ratio.

    Returns rows ``{"N", "L", "naive_ms", "dplr_ms", "speedup"}`` (speedup = naive_ms / dplr_ms),
    sorted by N; an N without a common L is left out.
    """
    times: dict[tuple[str, int], dict[int, float]] = {}
    for row in check_bench(data)["single"]:
        if row["ms"] is not None:
            times.setdefault((row["method"], int(row["N"])), {})[int(row["L"])] = float(row["ms"])
    rows = []
    for N in sorted({N for _, N in times}):
        naive, fast = times.get(("naive", N), {}), times.get(("dplr", N), {})
        common = set(naive) & set(fast)
        if common:
            L = max(common)
            rows.append({"N": N, "L": L, "naive_ms": naive[L], "dplr_ms": fast[L], "speedup": naive[L] / fast[L]})
    return rows


def _series(rows: list[dict], group: Sequence[str], value: str) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Group rows by the ``group`` keys (a missing key counts as None); each group → (sorted L, value).

    Rows whose ``value`` is None are skipped.
    """
    out: dict[tuple, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get(value) is None:
            continue
        out.setdefault(tuple(row.get(g) for g in group), []).append((float(row["L"]), float(row[value])))
    series = {}
    for key in sorted(out, key=lambda k: tuple((0, x) if isinstance(x, (int, float)) else (1, str(x)) for x in k)):
        pts = sorted(out[key])
        series[key] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return series


def _length_axis(ax: Any, series: dict) -> None:
    """Log-scale x axis labelled at the sequence lengths that occur (at most 8 of them), no minor labels."""
    Ls = sorted({float(v) for lengths, _ in series.values() for v in lengths})
    if not Ls:
        return
    if len(Ls) > 8:
        Ls = [Ls[i] for i in np.unique(np.linspace(0, len(Ls) - 1, 8).round().astype(int))]
    ax.xaxis.set_major_locator(FixedLocator(Ls))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{L:g}" for L in Ls]))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _short_title(meta: dict) -> str:
    day = str(meta["date"])[:10]  # an ISO date-time keeps only its date in a title
    return f"{meta['device_kind']} ({meta['platform']}), JAX {meta['jax_version']}, {day}"


def plot_bench_single(data: dict) -> Figure:
    """Time of one kernel (H = 1) against L on log–log axes: one colour per N, solid DPLR, dashed naive.

    Returns the Figure (one Axes). Rows with ``ms`` None are skipped.
    """
    data = check_bench(data)
    series = _series(data["single"], ("method", "N"), "ms")
    if not series:
        raise ValueError("data: 'single' holds no timings to plot")
    Ns = sorted({key[1] for key in series})
    colors = {N: plt.cm.viridis(i / max(1, len(Ns) - 1) * 0.85) for i, N in enumerate(Ns)}
    styles = {"naive": ("--", "o"), "dplr": ("-", "s")}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (method, N), (L, ms) in series.items():
        ls, marker = styles.get(method, (":", "^"))
        ax.loglog(L, ms, ls=ls, marker=marker, ms=4, color=colors[N], label=f"{method}, N={N}")
    _length_axis(ax, series)
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time per kernel (ms)")
    ax.set_title(f"Kernel time, {_short_title(data['meta'])}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _batched_label(key: tuple) -> str:
    impl, H, N = key
    return (f"{impl}, " if impl is not None else "") + f"H={H}, N={N}"


def plot_bench_batched(data: dict) -> Figure:
    """A batch of H kernels (an S4 layer's worth): forward ms, forward+backward ms and memory vs L.

    Three panels, log–log, one line per (impl, H, N) — ``impl`` is an optional key of the rows naming
    the implementation. Memory panel (MiB): ``peak_bytes`` solid, ``temp_bytes`` dashed; rows with None
    are skipped (e.g. a backend without memory statistics, or a memory-only run without timings).
    """
    data = check_bench(data)
    rows = data["batched"]
    group = ("impl", "H", "N")
    fwd = _series(rows, group, "forward_ms")
    bwd = _series(rows, group, "forward_backward_ms")
    peak = _series(rows, group, "peak_bytes")
    temp = _series(rows, group, "temp_bytes")
    if not (fwd or bwd or peak or temp):
        raise ValueError("data: 'batched' holds no timings or memory figures to plot")
    keys = list(dict.fromkeys([*fwd, *bwd, *peak, *temp]))
    colors = {k: plt.cm.plasma(i / max(1, len(keys) - 1) * 0.85) for i, k in enumerate(keys)}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, series, title in ((axes[0], fwd, "forward"), (axes[1], bwd, "forward + backward")):
        for key, (L, v) in series.items():
            ax.loglog(L, v, "-o", ms=3, color=colors[key], label=_batched_label(key))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("time (ms)")
        if not series:
            ax.text(0.5, 0.5, "no timings\nin this file", ha="center", va="center", transform=ax.transAxes)
    mem = axes[2]
    for key, (L, v) in peak.items():
        mem.loglog(L, v / 2**20, "-o", ms=3, color=colors[key], label=f"peak, {_batched_label(key)}")
    for key, (L, v) in temp.items():
        mem.loglog(L, v / 2**20, "--^", ms=3, color=colors[key], label=f"temp, {_batched_label(key)}")
    mem.set_title("memory (forward + backward)", fontsize=9)
    mem.set_ylabel("memory (MiB)")
    if not peak and not temp:
        mem.text(0.5, 0.5, "no memory statistics\nin this file", ha="center", va="center", transform=mem.transAxes)
    for ax, series in zip(axes, (fwd, bwd, {**temp, **peak})):
        _length_axis(ax, series)
        ax.set_xlabel("sequence length L")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(f"Batched DPLR kernel, {_short_title(data['meta'])}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Chapter 7: recurrent timings and generation
# --------------------------------------------------------------------------------------------------


def seconds_per_step(fn: Callable[[Any], Any], u: Any, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn(u)`` divided by ``len(u)``, after one untimed warm-up call.

    ``fn`` should be ``jax.jit``-compiled; the warm-up call pays the compilation, and every call is
    waited for with ``block_until_ready``.
    """
    u = _check.vector("u", u, what="L")
    repeats = _check.length("repeats", repeats)
    jax.block_until_ready(fn(u))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(u))
        best = min(best, time.perf_counter() - t0)
    return best / u.shape[0]


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (y ∝ x^slope); positive inputs, same length ≥ 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"y: expected the shape of x {x.shape} with at least 2 points, got {y.shape}")
    if not (np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x, y: expected positive numbers (their logarithms are fitted)")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@jax.jit
def _scan_dense(Ab: jax.Array, Bb: jax.Array, C: jax.Array, u: jax.Array) -> jax.Array:
    return scan_ssm(Ab, Bb, C, u)[0]


@jax.jit
def _scan_structured(disc: DiscreteDPLR, C: jax.Array, u: jax.Array) -> jax.Array:
    return scan_dplr(disc, C, u)[0]


def recurrence_timings(
    Ns: Sequence[int], L: int = 1000, step: float = 1e-3, repeats: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    r"""Seconds per recurrent step of a rank-1 DPLR SSM: dense :math:`\bar A x` vs the O(N) step.

    The cost of a step depends only on the shapes, not on the values, so each N uses a random DPLR
    system shaped like LegS's (:math:`\Lambda_i = -\tfrac12 + i\,\omega_i`, rank-1 ``P = Q``, complex
    ``B``, ``C``; no N × N eigendecomposition, which would dominate the run time at N = 1024):
    ``disc = discrete_dplr(Lambda, P, P, B, step)``. The dense scan uses ``dense_from_discrete(disc)``
    (the same Ā, materialized, O(N²) per step), the structured one ``scan_dplr`` (O(N) per step). Both are
    jit-compiled ``lax.scan`` over the same random input of length L; see :func:`seconds_per_step`.
    Returns ``{"N", "dense", "dplr"}`` arrays.
    """
    L = _check.length("L", L)
    rng = np.random.default_rng(seed)
    u = jnp.asarray(rng.standard_normal(L))
    dense, structured = [], []
    for N in Ns:
        N = _check.length("N", N)
        Lambda = -0.5 + 1j * rng.uniform(-N, N, N)
        P, B = (rng.standard_normal((2, N)) + 1j * rng.standard_normal((2, N))) / np.sqrt(N)
        disc = discrete_dplr(Lambda, P, P, B, step)
        Ab, Bb = dense_from_discrete(disc)
        C = jnp.asarray(rng.standard_normal(N) + 1j * rng.standard_normal(N))
        dense.append(seconds_per_step(lambda v: _scan_dense(Ab, Bb, C, v), u, repeats))
        structured.append(seconds_per_step(lambda v: _scan_structured(disc, C, v), u, repeats))
    return {"N": np.asarray(Ns), "dense": np.asarray(dense), "dplr": np.asarray(structured)}


def generate_recurrent(
    disc: DiscreteDPLR, C: Any, drive: Any, gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Autoregressive generation in RNN mode, keeping only the state :math:`x_k` (N numbers).

    .. math::
        u_k = d_k + \tanh(\text{gain}\cdot y_{k-1}), \quad x_k = \bar A x_{k-1} + \bar B u_k, \quad
        y_k = \operatorname{Re}(C x_k), \quad y_{-1} = 0,\ x_{-1} = 0

    with one :func:`~s4lite.dplr_step.dplr_step` per token. ``drive d (L,)``. Returns
    ``(y (L,), u (L,), seconds (L,))``: the outputs, the inputs that were fed, and the wall time of each step.
    """
    n = disc.A0_diag.shape[0]
    C = jnp.asarray(_check.vector("C", C, n), disc.A0_diag.dtype)
    drive = np.asarray(_check.vector("drive", drive, what="L"), dtype=np.float64)

    @jax.jit
    def step(x: jax.Array, u_k: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = dplr_step(disc, x, u_k)
        return x, jnp.real(C @ x)

    x = jnp.zeros(n, disc.A0_diag.dtype)
    jax.block_until_ready(step(x, 0.0))  # compile outside the timed loop
    y_prev = 0.0
    ys, us, secs = [], [], []
    for d in drive:
        t0 = time.perf_counter()
        u_k = d + np.tanh(gain * y_prev)
        x, y = step(x, u_k)
        y_prev = float(y)
        secs.append(time.perf_counter() - t0)
        ys.append(y_prev)
        us.append(u_k)
    return np.array(ys), np.array(us), np.array(secs)


def generate_convolutional(
    K: Any, drive: Any, gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The same autoregressive generation in convolution mode: re-run the convolution every token.

    At step k the whole input so far, :math:`u_0 … u_k` (zero-padded to length L so that one compiled
    function serves every k), is convolved with the kernel ``K (L,)`` by
    :func:`~s4lite.convolution.causal_conv` and :math:`y_k` is read off; the history must be kept.
    Same recursion and returns as :func:`generate_recurrent`.
    """
    K = jnp.asarray(_check.vector("K", K, what="L"))
    L = K.shape[0]
    drive = np.asarray(_check.vector("drive", drive, L, what="L (the length of K)"), dtype=np.float64)

    @jax.jit
    def output(u_hist: jax.Array, k: jax.Array) -> jax.Array:
        return jnp.real(causal_conv(u_hist, K)[k])

    u_hist = np.zeros(L)
    jax.block_until_ready(output(jnp.asarray(u_hist), 0))
    y_prev = 0.0
    ys, secs = [], []
    for k, d in enumerate(drive):
        t0 = time.perf_counter()
        u_hist[k] = d + np.tanh(gain * y_prev)
        y_prev = float(output(jnp.asarray(u_hist), k))
        secs.append(time.perf_counter() - t0)
        ys.append(y_prev)
    return np.array(ys), u_hist.copy(), np.array(secs)
