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
* **The GPU study of a layer's kernel (chapter 6).** :func:`merge_batched` joins several benchmark runs,
  :func:`plot_layer_study` draws time and memory against L with a reference and targets,
  :func:`layer_kernel_work` and :func:`roofline_bounds` estimate the hardware limits,
  :func:`target_table` compares targets with the best measurement, :func:`run_spread` compares runs of
  the same implementation, :func:`plot_block_study` draws the block size of the fused (Pallas) kernel,
  :func:`fused_kernel_work` counts the bytes the fused kernel must move, :func:`kernel_and_grad`
  evaluates a kernel and its gradient for the CPU check of the fused kernel,
  :func:`plot_train_shares` and :func:`plot_train_configs` split training steps, :func:`pivot_table`
  lays out the GPU numerics.
* **Recurrent timings and generation (chapter 7).** :func:`seconds_per_step`,
  :func:`recurrence_timings`, :func:`generate_recurrent`, :func:`generate_convolutional`.
"""

from __future__ import annotations

import json
import time
from math import comb
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

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
from ._io import find_artifact  # noqa: F401  (re-exported: the chapters import it from here)

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
# Chapter 6: the GPU study of a layer's kernel (several benchmark files, roofline, targets)
# --------------------------------------------------------------------------------------------------

_LAYER_KEY = ("impl", "H", "N", "L")


def merge_batched(runs: Mapping[str, dict]) -> list[dict]:
    """The ``batched`` rows of several benchmark runs, in order, each copied with three more keys.

    ``runs`` maps a name (e.g. the file name) to a benchmark dict (checked by :func:`check_bench`).
    Every row gets ``source`` (that name), ``date`` (the run's ``meta["date"]``) and ``peak_own``:
    True when the row's ``peak_bytes`` is larger than every earlier row's of the same run. The device's
    ``peak_bytes`` is a process-wide high-water mark that only grows, so only a row that raised it
    can claim it as its own peak; the others inherit an earlier row's figure.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs: expected a non-empty mapping name -> benchmark dict")
    merged = []
    for name, data in runs.items():
        data = check_bench(data)
        mark = -1.0
        for row in data["batched"]:
            peak = row.get("peak_bytes")
            own = peak is not None and float(peak) > mark
            if peak is not None:
                mark = max(mark, float(peak))
            merged.append({**row, "source": str(name), "date": str(data["meta"]["date"]), "peak_own": own})
    return merged


def newest_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per (impl, H, N, L): the one from the run with the latest ``date`` (first-seen order kept).

    ``rows`` as returned by :func:`merge_batched`. ISO dates compare correctly as strings.
    """
    best: dict[tuple, dict] = {}
    for row in rows:
        if "date" not in row:
            raise ValueError("rows: expected rows from merge_batched (with a 'date' key)")
        key = tuple(row.get(k) for k in _LAYER_KEY)
        if key not in best or str(row["date"]) > str(best[key]["date"]):
            best[key] = row
    return list(best.values())


def find_row(rows: Sequence[dict], impl: str, L: int) -> dict:
    """The newest row (see :func:`newest_rows`) of implementation ``impl`` at length ``L``."""
    found = [r for r in newest_rows(rows) if r.get("impl") == impl and int(r["L"]) == int(L)]
    if not found:
        raise ValueError(f"impl: no row for {impl!r} at L={L}")
    return found[0]


def best_row(rows: Sequence[dict], key: str, L: int) -> dict:
    """The row with the smallest ``row[key]`` among the newest rows at length ``L`` (None values skipped)."""
    cands = [r for r in newest_rows(rows) if int(r["L"]) == int(L) and r.get(key) is not None]
    if not cands:
        raise ValueError(f"key: no row at L={L} has a value for {key!r}")
    return min(cands, key=lambda r: float(r[key]))


def target_table(
    rows: Sequence[dict], targets: Mapping[str, float], L: int, peer: Mapping[str, float] | None = None
) -> list[dict]:
    """Targets against the best measured figure at length ``L``, one record per target.

    ``targets`` maps a row key (``forward_ms``, ``forward_backward_ms``, ``total_bytes``, …) to its upper
    limit. Returns ``{"key", "target", "best", "impl", "met", "peer"}`` with ``best`` from
    :func:`best_row`, ``met = best <= target`` and ``peer = peer.get(key)`` (None without it).
    """
    out = []
    for key, limit in targets.items():
        row = best_row(rows, key, L)
        value = float(row[key])
        out.append({"key": key, "target": float(limit), "best": value, "impl": row.get("impl"),
                    "met": value <= float(limit), "peer": None if peer is None else peer.get(key)})
    return out


def run_spread(
    rows: Sequence[dict], L: int, keys: Sequence[str] = ("forward_ms", "forward_backward_ms")
) -> list[dict]:
    """How far apart repeated measurements are: every implementation measured in two or more runs at ``L``.

    ``rows`` from :func:`merge_batched`. One record per (implementation, key), implementations in
    first-seen order: ``{"impl", "key", "values", "spread"}`` with ``values`` a dict run name → figure
    (runs in the order of ``rows``) and ``spread = max / min − 1`` (0 when the runs agree). Rows whose
    figure is None are left out.
    """
    L = _check.length("L", L)
    out = []
    impls = list(dict.fromkeys(r.get("impl") for r in rows))
    for impl in impls:
        for key in keys:
            values = {str(r["source"]): float(r[key]) for r in rows
                      if r.get("impl") == impl and int(r["L"]) == L and r.get(key) is not None}
            if len(values) >= 2:
                v = list(values.values())
                out.append({"impl": impl, "key": key, "values": values, "spread": max(v) / min(v) - 1.0})
    return out


def pivot_table(
    records: Sequence[Mapping[str, Any]], row_keys: Sequence[str], col_key: str, value_key: str
) -> tuple[list[str], list[list[Any]]]:
    """Records → a table: one row per distinct ``row_keys`` values, one column per distinct ``col_key`` value.

    Both in first-seen order. Returns ``(header, body)``: header ``[*row_keys, *column values]`` (as
    strings), each body row the row-key values followed by ``value_key`` of the matching record
    (None where there is none). Raises ``ValueError`` for a record missing a key, or two records for
    the same cell.
    """
    cells: dict[tuple, dict[Any, Any]] = {}
    cols: list[Any] = []
    for i, rec in enumerate(records):
        missing = [k for k in (*row_keys, col_key, value_key) if k not in rec]
        if missing:
            raise ValueError(f"records[{i}]: missing keys {missing}")
        row = tuple(rec[k] for k in row_keys)
        col = rec[col_key]
        if col not in cols:
            cols.append(col)
        if col in cells.setdefault(row, {}):
            raise ValueError(f"records[{i}]: a second value for row {row}, column {col!r}")
        cells[row][col] = rec[value_key]
    header = [*map(str, row_keys), *map(str, cols)]
    body = [[*row, *(vals.get(c) for c in cols)] for row, vals in cells.items()]
    return header, body


def format_metric(key: str, value: float | None) -> str:
    """A benchmark figure for a table: keys ending in ``bytes`` in GB (10⁹ bytes), others in ms; None → "–"."""
    if value is None:
        return "–"
    return f"{float(value) / 1e9:.3f} GB" if key.endswith("bytes") else f"{float(value):.3f} ms"


def html_table(header: Sequence[str], body: Sequence[Sequence[Any]], caption: str | None = None) -> str:
    """A small HTML table (every cell ``str()``-ed and escaped); each body row has ``len(header)`` cells."""
    import html

    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"body[{i}]: expected {len(header)} cells (the header's), got {len(row)}")
    esc = lambda x: html.escape(str(x))  # noqa: E731
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body]
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _plain_log_yaxis(ax: Any) -> None:
    """Label a log y axis with plain numbers (0.2, 0.5, 1, 2, …) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter

    def plain(y: float, _pos: Any) -> str:
        return f"{y:g}"

    def minor(y: float, _pos: Any) -> str:
        lead = f"{y:.0e}"[0]  # leading digit of the tick value
        return f"{y:g}" if lead in "25" else ""

    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _layer_label(impl: Any, source: str, multi: bool) -> str:
    return f"{impl} ({source})" if multi else str(impl)


def plot_layer_study(
    rows: Sequence[dict],
    peer: Sequence[dict] | None = None,
    targets: Mapping[str, float] | None = None,
    target_L: int | None = None,
) -> Figure:
    """The kernel of one layer on log–log axes against L: forward ms, forward + backward ms, memory (GB).

    ``rows`` from :func:`merge_batched`: one colour per implementation, one line per (impl, source); an
    implementation measured in more than one run is drawn once per run (newest solid, older dashed)
    and labelled with the run. Memory is ``total_bytes`` (the compiled forward + backward program:
    temporaries, arguments, outputs) in GB = 10⁹ bytes; hollow circles mark ``peak_bytes`` where the row
    raised the process's high-water mark (``peak_own``). ``peer``: reference rows (keys L and any of
    forward_ms, forward_backward_ms, total_bytes), drawn in black as "peer (reported)". ``targets``:
    upper limits for those keys at ``target_L``, drawn as red triangles.
    """
    if not rows:
        raise ValueError("rows: expected at least one batched row (see merge_batched)")
    panels = (("forward_ms", "forward", "time (ms)", 1.0),
              ("forward_backward_ms", "forward + backward", "time (ms)", 1.0),
              ("total_bytes", "memory of the compiled fwd + bwd program", "memory (GB = 10⁹ bytes)", 1e-9))
    impls = list(dict.fromkeys(r.get("impl") for r in rows))
    colors = {impl: plt.cm.tab10(i % 10) for i, impl in enumerate(impls)}
    sources_of = {impl: list(dict.fromkeys(r["source"] for r in rows if r.get("impl") == impl)) for impl in impls}
    newest = {impl: max((r for r in rows if r.get("impl") == impl), key=lambda r: str(r["date"]))["source"]
              for impl in impls}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    for ax, (key, title, ylabel, scale) in zip(axes, panels):
        all_L = set()
        series = _series(rows, ("impl", "source"), key)
        order = sorted(series, key=lambda k: (impls.index(k[0]), sources_of[k[0]].index(k[1])))
        for impl, source in order:
            L, v = series[(impl, source)]
            multi = len(sources_of[impl]) > 1
            ax.loglog(L, v * scale, "-" if source == newest[impl] else "--", marker="o", ms=3.5,
                      color=colors[impl], label=_layer_label(impl, source, multi))
            all_L.update(L.tolist())
        if key == "total_bytes":
            own = [r for r in rows if r.get("peak_own") and r.get("peak_bytes") is not None]
            for i, r in enumerate(own):
                ax.loglog([r["L"]], [r["peak_bytes"] * scale], "o", mfc="none", ms=8, color=colors[r.get("impl")],
                          label="process peak, where the row raised it" if i == 0 else None)
        if peer:
            pts = sorted((float(p["L"]), float(p[key])) for p in peer if p.get(key) is not None)
            if pts:
                ax.loglog([p[0] for p in pts], [p[1] * scale for p in pts], ":x", color="black", ms=7, mew=2,
                          label="peer (reported)")
                all_L.update(p[0] for p in pts)
        if targets and key in targets and target_L is not None:
            ax.plot([target_L], [targets[key] * scale], "v", color="red", ms=10, zorder=5, label="target (upper limit)")
            ax.axhline(targets[key] * scale, color="red", lw=0.8, ls=":", zorder=1)
        _length_axis(ax, {0: (np.array(sorted(all_L)), None)})
        _plain_log_yaxis(ax)
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=7, frameon=False)
    H = sorted({r["H"] for r in rows})
    N = sorted({r["N"] for r in rows})
    fig.suptitle(f"Kernel of one layer, H = {', '.join(map(str, H))}, N = {', '.join(map(str, N))}", fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig


def plot_block_study(rows: Sequence[dict], blocks: Mapping[str, int]) -> Figure:
    """Time of the fused kernel against its block size (frequencies per program), one line per (L, run).

    ``rows`` from :func:`merge_batched`; ``blocks`` maps an implementation name to its block size
    (e.g. ``{"layer_pallas_b32": 32, "layer_pallas": 64}``); rows of other implementations are ignored.
    Two log–log panels, forward and forward + backward (ms), x axis labelled at the block sizes. One
    colour per L; the newest run (latest ``date``) solid, older runs dashed.
    """
    sel = [r for r in rows if r.get("impl") in blocks]
    if not sel:
        raise ValueError(f"rows: no row of the implementations {sorted(blocks)}")
    Ls = sorted({int(r["L"]) for r in sel})
    sources = list(dict.fromkeys(r["source"] for r in sel))
    newest = max(sel, key=lambda r: str(r["date"]))["source"]
    colors = {L: plt.cm.viridis(i / max(1, len(Ls) - 1) * 0.85) for i, L in enumerate(Ls)}
    sizes = sorted({int(b) for b in blocks.values()})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    for ax, (key, title) in zip(axes, (("forward_ms", "forward"), ("forward_backward_ms", "forward + backward"))):
        for L in Ls:
            for source in sources:
                pts = sorted((int(blocks[r["impl"]]), float(r[key])) for r in sel
                             if int(r["L"]) == L and r["source"] == source and r.get(key) is not None)
                if not pts:
                    continue
                ax.loglog([p[0] for p in pts], [p[1] for p in pts], "-" if source == newest else "--",
                          marker="o", ms=4, color=colors[L], label=f"L = {L} ({source})")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_major_formatter(FixedFormatter([str(b) for b in sizes]))
        ax.xaxis.set_minor_formatter(NullFormatter())
        _plain_log_yaxis(ax)
        ax.set_xlabel("block size (frequencies per program)")
        ax.set_ylabel("time (ms)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    H = sorted({r["H"] for r in sel})
    N = sorted({r["N"] for r in sel})
    fig.suptitle(f"Fused kernel, H = {', '.join(map(str, H))}, N = {', '.join(map(str, N))}: block size", fontsize=10)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def cauchy_imag_flops_per_pair(n_vectors: int = 4) -> int:
    r"""Real floating-point operations of :func:`~s4lite.cauchy.cauchy_conj_imag` per (node, conjugate pair).

    For one node :math:`y` and one pole :math:`w = a + ib` (a, b, a² per pole, not per pair):

    * :math:`y-b,\ y+b` (2), their squares (2), :math:`a^2 + (\cdot)^2` (2), the reciprocals
      :math:`d_1, d_2` (2, a division counted as one flop);
    * :math:`\alpha = -a(d_1+d_2)` (2), :math:`(y-b)d_1,\ (y+b)d_2` (2),
      :math:`\beta` and :math:`\gamma` from those two products (1 each), :math:`\delta = a(d_2-d_1)` (2):
      16 flops for the four real matrices, each intermediate computed once;
    * then each vector :math:`v = p + iq` meets the four matrices in the products
      :math:`p\alpha + q\beta` and :math:`p\gamma + q\delta`: 4 multiply–adds, 8 flops per vector.

    Total ``16 + 8 * n_vectors``; the kernel's Woodbury step has ``n_vectors = 4`` (k₀₀, k₀₁, k₁₀, k₁₁).
    """
    n_vectors = _check.length("n_vectors", n_vectors)
    return 16 + 8 * n_vectors


def xla_flops_per_pair(M: int = 513, half_N: int = 32, n_vectors: int = 4) -> float:
    """XLA's own flop count (``cost_analysis``) of ``jit(cauchy_conj_imag)`` in float32, per (node, pair).

    Compiles (does not run) the function for ``v (n_vectors, half_N)`` complex64, ``z (M,)``,
    ``w (half_N,)`` on the default backend and divides the reported flops by ``M * half_N``. An
    independent cross-check of :func:`cauchy_imag_flops_per_pair` (XLA counts each elementwise
    operation as written, without sharing common subexpressions).
    """
    from ..cauchy import cauchy_conj_imag

    M, half_N, n_vectors = (_check.length(n, x) for n, x in (("M", M), ("half_N", half_N), ("n_vectors", n_vectors)))
    args = (jax.ShapeDtypeStruct((n_vectors, half_N), jnp.complex64), jax.ShapeDtypeStruct((M,), jnp.complex64),
            jax.ShapeDtypeStruct((half_N,), jnp.complex64))
    cost = jax.jit(cauchy_conj_imag).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per computation
        cost = cost[0]
    if not cost or cost.get("flops") is None:
        raise ValueError("backend: this JAX backend reports no flop count (cost_analysis)")
    return float(cost["flops"]) / (M * half_N)


def layer_kernel_work(
    H: int, N: int, L: int, param_bytes: int, flops_per_pair: float, itemsize: int = 4
) -> dict[str, float]:
    r"""Work of the H-channel kernel :func:`~s4lite.kernel.kernel_dplr_conj` with the Cauchy kernel for imaginary nodes.

    With :math:`M = L/2 + 1` frequencies and :math:`N/2` conjugate pairs:

    * ``pairs`` :math:`= H\,M\,N/2`; ``cauchy_flops`` = pairs × ``flops_per_pair``;
    * ``fft_flops`` :math:`= 5 H L \log_2 L` (the usual estimate for a length-L FFT, per channel);
    * ``compulsory_bytes`` = ``param_bytes`` read + the :math:`H \times L` kernel written
      (``itemsize`` bytes per number): what any implementation must move;
    * ``materialized_bytes`` = compulsory + the four real :math:`(H, M, N/2)` matrices of
      :func:`~s4lite.cauchy.cauchy_conj_imag`, written once and read once:
      :math:`2 \cdot 4\, H M (N/2) \cdot` itemsize.

    Returns those keys plus ``flops`` (Cauchy + FFT), all floats.
    """
    H, N, L = (_check.length(n, x) for n, x in (("H", H), ("N", N), ("L", L)))
    if N % 2:
        raise ValueError(f"N: expected an even state size (conjugate pairs), got {N}")
    if L < 2:
        raise ValueError(f"L: expected a length >= 2, got {L}")
    _check.positive("flops_per_pair", flops_per_pair)
    if int(param_bytes) < 0:
        raise ValueError(f"param_bytes: expected a byte count >= 0, got {param_bytes}")
    M = L // 2 + 1
    pairs = float(H * M * (N // 2))
    cauchy_flops = pairs * float(flops_per_pair)
    fft_flops = 5.0 * H * L * np.log2(L)
    compulsory = float(param_bytes) + float(H * L * itemsize)
    materialized = compulsory + 2.0 * 4.0 * pairs * itemsize
    return {"pairs": pairs, "cauchy_flops": cauchy_flops, "fft_flops": fft_flops,
            "flops": cauchy_flops + fft_flops, "compulsory_bytes": compulsory, "materialized_bytes": materialized}


def fused_kernel_work(
    H: int,
    N: int,
    L: int,
    param_bytes: int,
    flops_per_pair: float,
    n_vectors: int = 4,
    block_m: int = 64,
    itemsize: int = 4,
) -> dict[str, float]:
    r"""Work of :func:`~s4lite.cauchy_pallas.kernel_dplr_conj_fused`, the H kernels with fused Cauchy sums.

    The fused kernel evaluates the Cauchy sums at :math:`M_p = \lceil M / \text{block\_m}\rceil\,\text{block\_m}`
    nodes (:math:`M = L/2 + 1`, padded to whole blocks) for :math:`n_p` poles (N/2 rounded up to a power of
    two), and never stores a (frequency × pole) matrix. What it must move through memory:

    * the parameters, read (``param_bytes``);
    * ``cauchy_out_bytes`` :math:`= 2 \cdot H \cdot 2J \cdot M_p \cdot` itemsize: its output, the real and
      imaginary parts of :math:`J` = ``n_vectors`` sums per node, written once and read once by the
      Woodbury combination;
    * ``spectrum_bytes`` :math:`= 2 \cdot H M \cdot 2\,` itemsize: the complex spectrum
      :math:`\hat K(\omega)`, written by the Woodbury combination and read by the inverse FFT;
    * the :math:`H \times L` kernel, written (``H * L * itemsize``).

    ``compulsory_bytes`` is the parameters plus the kernel (as in :func:`layer_kernel_work`),
    ``fused_bytes`` all four items. ``pairs`` :math:`= H M_p n_p`, ``cauchy_flops`` = pairs ×
    ``flops_per_pair``, ``fft_flops`` :math:`= 5 H L \log_2 L`, ``flops`` their sum. All floats.
    """
    H, N, L = (_check.length(n, x) for n, x in (("H", H), ("N", N), ("L", L)))
    n_vectors, block_m = _check.length("n_vectors", n_vectors), _check.length("block_m", block_m)
    if N % 2:
        raise ValueError(f"N: expected an even state size (conjugate pairs), got {N}")
    if L < 2:
        raise ValueError(f"L: expected a length >= 2, got {L}")
    if block_m & (block_m - 1):
        raise ValueError(f"block_m: expected a power of two, got {block_m}")
    _check.positive("flops_per_pair", flops_per_pair)
    if int(param_bytes) < 0:
        raise ValueError(f"param_bytes: expected a byte count >= 0, got {param_bytes}")
    from ..cauchy_pallas import padded_sizes

    M = L // 2 + 1
    n_p, Mp = padded_sizes(N // 2, L, block_m)
    pairs = float(H * Mp * n_p)
    cauchy_out = 2.0 * H * 2 * n_vectors * Mp * itemsize
    spectrum = 2.0 * H * M * 2 * itemsize
    kernel = float(H * L * itemsize)
    compulsory = float(param_bytes) + kernel
    cauchy_flops = pairs * float(flops_per_pair)
    fft_flops = float(5.0 * H * L * np.log2(L))
    return {"pairs": pairs, "cauchy_flops": cauchy_flops, "fft_flops": fft_flops, "flops": cauchy_flops + fft_flops,
            "cauchy_out_bytes": cauchy_out, "spectrum_bytes": spectrum, "compulsory_bytes": compulsory,
            "fused_bytes": compulsory + cauchy_out + spectrum}


def kernel_and_grad(params: Mapping[str, Any], L: int, weights: Any, kernel: str = "xla") -> tuple[jax.Array, dict]:
    r"""The layer's kernels and the gradient of a weighted sum of them, in one compiled call.

    .. math::
        K = \texttt{s4\_kernel}(\theta, L), \qquad \ell(\theta) = \sum_{h,k} W_{hk} K_{hk}, \qquad
        \text{returns } (K,\ \nabla_\theta \ell)

    ``params`` as from :func:`~s4lite.layer.init_s4` (H channels), ``weights W (H, L)``, ``kernel`` one
    of ``"xla"``, ``"pallas"``, ``"auto"`` (see :func:`~s4lite.layer.s4_kernel`). Returns ``K (H, L)``
    and a dict of gradients shaped like ``params``.
    """
    from ..layer import s4_kernel

    L = _check.length("L", L)
    if "log_step" not in params:
        raise ValueError("params: expected S4 layer parameters (see init_s4), with a 'log_step' entry")
    H = int(params["log_step"].shape[0])
    w = jnp.asarray(weights)
    if w.shape != (H, L):
        raise ValueError(f"weights: expected shape (H, L) = ({H}, {L}), got {w.shape}")

    def loss(p: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
        K = s4_kernel(p, L, kernel)
        return jnp.sum(w * K), K

    (_, K), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(dict(params))
    return K, grads


_ROOFLINE_PARTS = ("cauchy_out_bytes", "spectrum_bytes")  # parts of a byte count, not a whole to bound


def roofline_bounds(work: Mapping[str, float], peak_flops: float, bandwidth: float) -> dict[str, float]:
    """Lower bounds on the run time (seconds) from a :func:`layer_kernel_work` or :func:`fused_kernel_work` estimate.

    ``compute`` = flops / ``peak_flops``; and for every byte total ``X_bytes`` of ``work``
    (``compulsory``, ``materialized``, ``fused``; the parts ``cauchy_out_bytes`` and ``spectrum_bytes``
    are not totals and are skipped) a bound ``X`` = X_bytes / ``bandwidth`` (bytes per second).
    """
    _check.positive("peak_flops", peak_flops)
    _check.positive("bandwidth", bandwidth)
    if "flops" not in work:
        raise ValueError("work: expected a 'flops' entry (see layer_kernel_work)")
    bounds = {"compute": work["flops"] / peak_flops}
    for key, value in work.items():
        if key.endswith("_bytes") and key not in _ROOFLINE_PARTS:
            bounds[key[: -len("_bytes")]] = value / bandwidth
    return bounds


def train_parts(train: Mapping[str, Any]) -> dict[str, float]:
    """The training step of ``benchmarks/train_throughput.py`` split into its parts, in ms.

    Keys ``kernel``, ``conv``, ``rest`` (from ``kernel_fwd_bwd_ms``, ``fft_conv_fwd_bwd_ms`` — the
    convolution actually used, named by ``config["conv"]`` — and ``rest_ms``). Raises ``ValueError``
    naming a missing key.
    """
    keys = ("step_ms", "samples_per_s", "kernel_fwd_bwd_ms", "fft_conv_fwd_bwd_ms", "rest_ms")
    missing = [k for k in keys if k not in train]
    if missing:
        raise ValueError(f"train: missing keys {missing}")
    return {"kernel": float(train["kernel_fwd_bwd_ms"]), "conv": float(train["fft_conv_fwd_bwd_ms"]),
            "rest": float(train["rest_ms"])}


def plot_train_shares(train: Mapping[str, Any]) -> Figure:
    """Bar chart of the training step's parts (ms), each bar annotated with its share of the step.

    The convolution bar is labelled with ``config["conv"]`` (``"fft"``, the benchmark's default, when
    the file does not say). The title gives the step time and samples per second.
    """
    parts = train_parts(train)
    conv = str(train.get("config", {}).get("conv", "fft"))
    step = float(train["step_ms"])
    labels = ["S4 kernels", f"convolution ({conv})", "rest"]
    values = [parts["kernel"], parts["conv"], parts["rest"]]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    bars = ax.bar(labels, values, color=["C0", "C1", "C7"])
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.2f} ms\n{v / step:.0%} of the step", (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_ylabel("time per training step (ms)")
    ax.set_ylim(0, max(values) * 1.3)
    dev = train.get("meta", {}).get("device_kind", "")
    ax.set_title(f"training step on {dev}: {step:.2f} ms, {float(train['samples_per_s']):,.0f} samples/s", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_train_configs(trains: Mapping[str, Mapping[str, Any]], highlight: str | None = None) -> Figure:
    """Training steps of several configurations as horizontal stacked bars: S4 kernels, convolution, rest (ms).

    ``trains`` maps a label to a file of ``benchmarks/train_throughput.py`` (see :func:`train_parts`),
    drawn top to bottom in the order given; the end of each bar is annotated with the step time and
    samples per second. ``highlight``: one label, marked with a star and bold type (e.g. the
    configuration of a recorded training run).
    """
    if not isinstance(trains, Mapping) or not trains:
        raise ValueError("trains: expected a non-empty mapping label -> training-step file")
    if highlight is not None and highlight not in trains:
        raise ValueError(f"highlight: expected one of {list(trains)}, got {highlight!r}")
    labels = list(trains)
    parts = [train_parts(trains[k]) for k in labels]
    fig, ax = plt.subplots(figsize=(7.4, 0.7 * len(labels) + 1.6))
    y = np.arange(len(labels))[::-1]
    left = np.zeros(len(labels))
    for part, name, color in (("kernel", "S4 kernels", "C0"), ("conv", "convolution", "C1"), ("rest", "rest", "C7")):
        width = np.array([p[part] for p in parts])
        ax.barh(y, width, left=left, color=color, label=name, height=0.6)
        left = left + width
    for yi, k in zip(y, labels):
        t = trains[k]
        ax.annotate(f" {float(t['step_ms']):.2f} ms, {float(t['samples_per_s']):,.0f} samples/s",
                    (float(t["step_ms"]), yi), va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([("★ " + k) if k == highlight else k for k in labels], fontsize=8)
    for tick, k in zip(ax.get_yticklabels(), labels):
        if k == highlight:
            tick.set_fontweight("bold")
    ax.set_xlim(0, max(float(trains[k]["step_ms"]) for k in labels) * 1.45)
    ax.set_xlabel("time per training step (ms)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    devs = sorted({str(trains[k].get("meta", {}).get("device_kind", "")) for k in labels})
    ax.set_title(f"training step by configuration, {', '.join(devs)}", fontsize=9)
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
