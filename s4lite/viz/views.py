r"""Helpers for chapter 3 (two views of one model): a timer, the no-padding counterexample, cost plots.

* :func:`time_fn` — median wall-clock seconds of a JAX call, after a warm-up call that pays for the
  JIT compilation, with ``jax.block_until_ready`` so that asynchronous dispatch is not mistaken for speed.
* :func:`circular_conv` — what an FFT convolution computes *without* zero padding: the circular
  convolution :math:`y_k = \sum_{j=0}^{L-1} \bar K_j\, u_{(k-j) \bmod L}`, in which the end of the
  sequence wraps around into its beginning. It is here only to be compared with
  :func:`s4lite.convolution.causal_conv`, which pads to 2L and is causal.
* :func:`measure_costs` / :func:`plot_costs` — scan vs FFT convolution vs naive kernel generation as
  the sequence length grows.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import _check
from ..convolution import causal_conv, kernel_naive
from ..discretize import bilinear
from ..hippo import make_hippo
from ..recurrence import scan_ssm

Array = jax.Array


def time_fn(fn: Callable[..., Any], *args: Any, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock time of ``fn(*args)`` in seconds over ``repeats`` calls.

    ``warmup`` calls run first and are not timed (the first compiles ``fn`` if it is jitted); every
    call is waited for with ``jax.block_until_ready``, since JAX returns before the work is done.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    repeats = _check.length("repeats", repeats)
    for _ in range(_check.length("warmup", warmup)):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def circular_conv(u: Any, K: Any) -> Array:
    r"""Circular convolution by an unpadded FFT of length L: :math:`y_k = \sum_j \bar K_j u_{(k-j) \bmod L}`.

    This is the *wrong* way to apply an SSM kernel: the product of two length-L DFTs is the DFT of
    the circular convolution, so input from the end of the sequence leaks into the first outputs.
    Shapes: ``u (L,)``, ``K (L,)`` → ``(L,)``.
    """
    u = _check.vector("u", u, what="L")
    K = _check.vector("K", K, u.shape[0], what="L (the length of u)")
    L = u.shape[0]
    if jnp.iscomplexobj(u) or jnp.iscomplexobj(K):
        return jnp.fft.ifft(jnp.fft.fft(u) * jnp.fft.fft(K))
    return jnp.fft.irfft(jnp.fft.rfft(u) * jnp.fft.rfft(K), L)


def measure_costs(
    lengths: Sequence[int], N: int = 64, step: float = 0.01, repeats: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    r"""Seconds per call of the three computations of chapter 3, for each sequence length L.

    The SSM is HiPPO-LegS of size N, bilinear with step Δ, a random C and a random input u. Each
    function is ``jax.jit``-compiled; :func:`time_fn` warms it up and reports the median.

    Returns:
        ``{"L": (n,), "scan": (n,), "conv": (n,), "kernel": (n,)}``: ``scan`` runs
        :func:`~s4lite.recurrence.scan_ssm`, ``conv`` runs :func:`~s4lite.convolution.causal_conv`
        with a kernel computed beforehand, ``kernel`` runs :func:`~s4lite.convolution.kernel_naive`.
    """
    lengths = [_check.length("lengths", L) for L in lengths]
    if not lengths:
        raise ValueError("lengths: expected at least one sequence length, got none")
    N = _check.length("N", N)
    A, B = make_hippo(N, "legs")
    Ab, Bb = bilinear(A, B, step)
    rng = np.random.default_rng(seed)
    C = jnp.asarray(rng.standard_normal(N), Ab.dtype)
    scan = jax.jit(lambda Ab, Bb, C, u: scan_ssm(Ab, Bb, C, u)[0])
    conv = jax.jit(causal_conv)
    kernel = jax.jit(kernel_naive, static_argnums=3)
    out: dict[str, list[float]] = {"scan": [], "conv": [], "kernel": []}
    for L in lengths:
        u = jnp.asarray(rng.standard_normal(L), Ab.dtype)
        K = jax.block_until_ready(kernel(Ab, Bb, C, L))
        out["scan"].append(time_fn(scan, Ab, Bb, C, u, repeats=repeats))
        out["conv"].append(time_fn(conv, u, K, repeats=repeats))
        out["kernel"].append(time_fn(kernel, Ab, Bb, C, L, repeats=repeats))
    result = {name: np.array(v) for name, v in out.items()}
    result["L"] = np.array(lengths)
    return result


COST_LABELS = {
    "scan": "recurrent scan (sequential)",
    "conv": "FFT convolution, kernel given",
    "kernel": "naive kernel $C\\bar A^j\\bar B$ (sequential)",
}


def plot_costs(costs: dict[str, np.ndarray], N: int | None = None) -> Figure:
    """Log-log plot of :func:`measure_costs`' result, with an O(L) guide line through the scan."""
    missing = [k for k in ("L", "scan", "conv", "kernel") if k not in costs]
    if missing:
        raise ValueError(f"costs: expected keys L, scan, conv, kernel; missing {missing}")
    L = np.asarray(costs["L"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, marker in (("scan", "o"), ("kernel", "s"), ("conv", "^")):
        ax.loglog(L, 1e3 * np.asarray(costs[name]), marker=marker, label=COST_LABELS[name])
    guide = 1e3 * costs["scan"][-1] * L / L[-1]
    ax.loglog(L, guide, "k:", lw=1, label=r"$\propto L$ (guide)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length $L$")
    ax.set_ylabel("time per call (ms)")
    ax.set_title("Cost of the two views" + (f" (N = {N})" if N is not None else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
