#!/usr/bin/env python
r"""Benchmark: the naive SSM kernel vs S4's DPLR kernel (Theorem 3), and a batched S4-layer kernel.

*Single SSM.* For N in ``--N`` and L in ``--L`` it times

* ``naive`` — :func:`s4lite.convolution.kernel_naive` on the dense bilinear :math:`(\bar A, \bar B)` of
  the real HiPPO-LegS matrix: L matrix–vector products, O(N² L) work, sequential in L;
* ``dplr`` — :func:`s4lite.kernel.kernel_dplr_ctilde` (the training path: :math:`\tilde C` is the
  parameter) on the DPLR form of the same matrix: Cauchy kernels at L points + one FFT, O((N + L) log L)
  up to the O(N L) Cauchy sum.

Both are ``jax.jit``-compiled, warmed up (compile + one run), then run ``--repeats`` times with
``block_until_ready``; the median wall time is reported in milliseconds. The naive case with
N² L > ``--max-naive-work`` is skipped (its cost is predictable; it is just slow on a CPU).

*Batched (``--H``).* H independent SSMs of size ``--batched-N`` (LegS initialization, log Δ uniform in
[log 1e-3, log 1e-1], random C̃), kernels computed with ``jax.vmap`` over H: the forward pass
(H × L kernel) and the forward + backward pass (``jax.grad`` of the sum of squares of all kernels with
respect to every parameter: Λ, P, B, C̃ as real/imaginary parts, and log Δ). Memory: the device's
``peak_bytes_in_use`` (``memory_stats()``, a process-wide high-water mark; None on CPU) and the
compiled program's ``temp_size_in_bytes`` (``memory_analysis()``) for forward + backward.

Example (CPU, about a minute)::

    python benchmarks/kernel.py --max-naive-work 3e8 --H 16 \
        --out artifacts/bench/kernel_cpu.json --plot artifacts/bench/kernel_cpu.png

Example (GPU)::

    python benchmarks/kernel.py --H 256 --out artifacts/bench/kernel_gpu.json --plot artifacts/bench/kernel_gpu.png
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--N", type=int, nargs="+", default=[16, 64, 256], help="state sizes (single-SSM timings)")
    p.add_argument("--L", type=int, nargs="+", default=[256, 1024, 4096, 16384], help="lengths (single-SSM timings)")
    p.add_argument("--methods", nargs="+", choices=["naive", "dplr"], default=["naive", "dplr"])
    p.add_argument("--max-naive-work", type=float, default=None,
                   help="skip the naive kernel when N*N*L exceeds this (e.g. 3e8 on a CPU); default: no limit")
    p.add_argument("--skip-single", action="store_true", help="only run the batched benchmark")
    p.add_argument("--H", type=int, default=0, help="number of SSMs for the batched benchmark (0: skip it)")
    p.add_argument("--batched-impl", nargs="+", choices=IMPLS, default=list(IMPLS), help="batched implementations to time")
    p.add_argument("--batched-N", type=int, default=64, help="state size of each SSM in the batched benchmark")
    p.add_argument("--batched-L", type=int, nargs="+", default=[1024, 4096, 16384], help="lengths (batched)")
    p.add_argument("--repeats", type=int, default=5, help="minimum number of timed runs per case (median reported)")
    p.add_argument("--min-time", type=float, default=0.2,
                   help="keep repeating (up to 200 runs) until the timed runs add up to this many seconds")
    p.add_argument("--memory-only", action="store_true",
                   help="batched: only compile and report memory_analysis() (no timing; ms fields are null)")
    p.add_argument("--x64", action="store_true", help="float64/complex128 instead of float32/complex64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--plot", default=None, help="write a log-log figure (ms vs L) here")
    args = p.parse_args(argv)
    from s4lite.options import check_options

    check_options(args, {"N": "int>=1", "L": "int>=1", "max_naive_work": ">0", "H": "int>=0", "batched_N": "even>=2",
                         "batched_L": "int>=1", "repeats": "int>=1", "min_time": ">=0", "seed": "int>=0"})  # fmt: skip
    return args


def time_ms(fn: Callable[[], Any], repeats: int, min_time: float = 0.0, max_repeats: int = 200) -> float:
    """Median wall time of ``fn()`` in ms, after a warm-up call (compilation) and one untimed run.

    Runs at least ``repeats`` times, and more (up to ``max_repeats``) until ``min_time`` seconds of
    timed runs have accumulated, so that fast cases get a stable median.
    """
    import jax

    jax.block_until_ready(fn())
    jax.block_until_ready(fn())
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_time * 1e3 and len(times) < max_repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def write_result(result: dict, path: str) -> None:
    """Write a benchmark's JSON record (indented, newline at the end), creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


def git_commit() -> str:
    """The commit of the code that runs (see :func:`s4lite.engine.git_commit`)."""
    from s4lite.engine import git_commit as commit

    return commit()


def peak_bytes() -> int | None:
    """The device's ``peak_bytes_in_use`` (None where JAX does not report memory, e.g. on CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if not stats:
        return None
    value = stats.get("peak_bytes_in_use")
    return int(value) if value is not None else None


def compiled_total_bytes(fn: Callable, *args: Any) -> int | None:
    """Temporaries + arguments + outputs of the compiled program: the memory one call needs at its peak."""
    import jax

    try:
        a = jax.jit(fn).lower(*args).compile().memory_analysis()
        return int(a.temp_size_in_bytes + a.argument_size_in_bytes + a.output_size_in_bytes)
    except Exception:  # noqa: BLE001 - not implemented on every backend/version
        return None


def compiled_temp_bytes(fn: Callable, *args: Any) -> int | None:
    """``temp_size_in_bytes`` of the compiled program, or None if the backend does not say."""
    import jax

    try:
        analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    except Exception:  # noqa: BLE001 - not implemented on every backend/version
        return None
    value = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
    return int(value) if value is not None else None


def single_benchmarks(args: argparse.Namespace, real, cplx) -> list[dict]:
    """Naive vs DPLR kernel for one SSM, over the grid ``args.N × args.L``."""
    import jax
    import jax.numpy as jnp

    from s4lite import hippo
    from s4lite.convolution import kernel_naive
    from s4lite.discretize import bilinear
    from s4lite.kernel import kernel_dplr_ctilde

    step = 1e-2
    rng = np.random.default_rng(args.seed)
    naive = jax.jit(kernel_naive, static_argnums=3)
    dplr = jax.jit(kernel_dplr_ctilde, static_argnums=6)
    rows = []
    for N in args.N:
        A, B = hippo.make_hippo(N, "legs")
        Ab, Bb = bilinear(jnp.asarray(A, real), jnp.asarray(B, real), real(step))
        c = jnp.asarray(rng.standard_normal(N), real)
        Lambda, P, Bt, _ = hippo.make_dplr(N, "legs")
        Lambda, P, Bt = (jnp.asarray(x, cplx) for x in (Lambda, P, Bt))
        Ct = jnp.asarray(rng.standard_normal(N) + 1j * rng.standard_normal(N), cplx)
        for L in args.L:
            if "naive" in args.methods:
                if args.max_naive_work is not None and N * N * L > args.max_naive_work:
                    print(f"naive N={N:4d} L={L:6d}: skipped (N²L = {N * N * L:.1e} > --max-naive-work)", flush=True)
                else:
                    ms = time_ms(lambda: naive(Ab, Bb, c, L), args.repeats, args.min_time)
                    rows.append({"method": "naive", "N": N, "L": L, "ms": ms})
                    print(f"naive N={N:4d} L={L:6d}: {ms:10.3f} ms", flush=True)
            if "dplr" in args.methods:
                ms = time_ms(lambda: dplr(Lambda, P, P, Bt, Ct, real(step), L), args.repeats, args.min_time)
                rows.append({"method": "dplr", "N": N, "L": L, "ms": ms})
                print(f"dplr  N={N:4d} L={L:6d}: {ms:10.3f} ms", flush=True)
    return rows


def init_layer(H: int, N: int, rng: np.random.Generator, real) -> dict[str, Any]:
    """Parameters of H independent DPLR SSMs (LegS init), every complex array as real/imag parts."""
    import jax.numpy as jnp

    from s4lite import hippo

    Lambda, P, B, _ = hippo.make_dplr(N, "legs")
    Ct = (rng.standard_normal((H, N)) + 1j * rng.standard_normal((H, N))) / np.sqrt(2)
    tile = lambda x: np.broadcast_to(x, (H, N))  # noqa: E731
    params = {
        "lambda_re": tile(Lambda.real), "lambda_im": tile(Lambda.imag),
        "p_re": tile(P.real), "p_im": tile(P.imag),
        "b_re": tile(B.real), "b_im": tile(B.imag),
        "ct_re": Ct.real, "ct_im": Ct.imag,
        "log_step": rng.uniform(np.log(1e-3), np.log(1e-1), H),
    }
    return {k: jnp.asarray(np.array(v), real) for k, v in params.items()}


def layer_kernels(params: dict[str, Any], L: int):
    """The H × L kernels of a layer: ``vmap`` of :func:`kernel_dplr_ctilde` over the H SSMs."""
    import jax
    import jax.numpy as jnp

    from s4lite.kernel import kernel_dplr_ctilde

    def one(p):
        lam = p["lambda_re"] + 1j * p["lambda_im"]
        P = p["p_re"] + 1j * p["p_im"]
        return kernel_dplr_ctilde(lam, P, P, p["b_re"] + 1j * p["b_im"], p["ct_re"] + 1j * p["ct_im"],
                                  jnp.exp(p["log_step"]), L)

    return jax.vmap(one)(params)


def s4_layer_kernels(params: dict[str, Any], L: int, cauchy_fn, chunks: int = 1):
    """The H × L kernels the S4 layer computes (N/2 states by conjugate symmetry, L/2+1 frequencies)."""
    import jax

    from s4lite.kernel import kernel_dplr_conj
    from s4lite.layer import ssm_parts

    Lambda, P, B, Ct, step = ssm_parts(params)
    one = lambda lam, p, b, c, dt: kernel_dplr_conj(lam, p, b, c, dt, L, cauchy_fn=cauchy_fn, chunks=chunks)  # noqa: E731
    return jax.vmap(one)(Lambda, P, B, Ct, step)


def pallas_layer_kernels(params: dict[str, Any], L: int, block_m: int):
    """The same H × L kernels with the fused Pallas/Triton Cauchy kernel (:mod:`s4lite.cauchy_pallas`)."""
    from s4lite.cauchy_pallas import kernel_dplr_conj_fused
    from s4lite.layer import ssm_parts

    return kernel_dplr_conj_fused(*ssm_parts(params), L, block_m=block_m)


IMPLS = ("full", "layer_matmul", "layer_fused", "layer_imag", "layer_chunked4", "layer_chunked16", "layer_imag_chunked8",
         "layer_pallas", "layer_pallas_b32", "layer_pallas_b128", "layer_pallas_b256")


def batched_benchmarks(args: argparse.Namespace, real) -> list[dict]:
    rows = []
    for impl in args.batched_impl:
        rows += batched_impl(args, real, impl)
    return rows


def batched_impl(args: argparse.Namespace, real, impl: str) -> list[dict]:
    """One implementation of the H-SSM kernel:

    * ``full``: every one of the N states and all L frequencies (``vmap`` of ``kernel_dplr_ctilde``,
      the way a straightforward implementation — and the peer — does it);
    * ``layer_matmul``: the S4 layer's path with the matmul Cauchy (``cauchy_conj``);
    * ``layer_fused``: the S4 layer's path with the fused Cauchy (``cauchy_conj_fused``);
    * ``layer_imag``: the layer's path with the real-arithmetic Cauchy for imaginary nodes (``cauchy_conj_imag``);
    * ``layer_chunkedC``, ``layer_imag_chunkedC``: the frequencies in C sequential, recomputed pieces;
    * ``layer_pallas``, ``layer_pallas_bB``: the fused Pallas (Triton) Cauchy kernel with blocks of
      64 (the default) or B frequencies per program (:mod:`s4lite.cauchy_pallas`).
    """
    import jax
    import jax.numpy as jnp

    from s4lite.cauchy import cauchy_conj, cauchy_conj_fused, cauchy_conj_imag
    from s4lite.layer import init_s4

    rng = np.random.default_rng(args.seed + 1)
    if impl == "full":
        params = init_layer(args.H, args.batched_N, rng, real)
        kernels = layer_kernels
    elif impl.startswith("layer_pallas"):
        from s4lite.cauchy_pallas import DEFAULT_BLOCK_M

        params = jax.tree.map(lambda x: x.astype(real), init_s4(jax.random.PRNGKey(args.seed), args.H, args.batched_N))
        block_m = int(impl.rsplit("_b", 1)[1]) if "_b" in impl else DEFAULT_BLOCK_M
        kernels = lambda p, L, b=block_m: pallas_layer_kernels(p, L, b)  # noqa: E731
    else:
        params = jax.tree.map(lambda x: x.astype(real), init_s4(jax.random.PRNGKey(args.seed), args.H, args.batched_N))
        fn = {"layer_fused": cauchy_conj_fused}.get(impl, cauchy_conj_imag if impl.startswith("layer_imag") else cauchy_conj)
        chunks = int(impl.rsplit("chunked", 1)[1]) if "chunked" in impl else 1
        kernels = lambda p, L, fn=fn, c=chunks: s4_layer_kernels(p, L, fn, c)  # noqa: E731
    rows = []
    for L in sorted(args.batched_L):  # increasing L: the process-wide peak then belongs to the largest so far
        forward = jax.jit(lambda p, L=L: kernels(p, L))
        loss = lambda p, L=L: jnp.sum(kernels(p, L) ** 2)  # noqa: E731
        fwd_bwd = jax.jit(jax.value_and_grad(loss))
        if args.memory_only:
            f_ms = fb_ms = None
        else:
            f_ms = time_ms(lambda: forward(params), args.repeats, args.min_time)
            fb_ms = time_ms(lambda: fwd_bwd(params), args.repeats, args.min_time)
        row = {
            "impl": impl, "H": args.H, "N": args.batched_N, "L": L,
            "forward_ms": f_ms, "forward_backward_ms": fb_ms,
            "peak_bytes": peak_bytes(),
            "temp_bytes": compiled_temp_bytes(jax.value_and_grad(loss), params),
            "total_bytes": compiled_total_bytes(jax.value_and_grad(loss), params),
            "forward_total_bytes": compiled_total_bytes(lambda p, L=L: kernels(p, L), params),
            "forward_temp_bytes": compiled_temp_bytes(lambda p, L=L: kernels(p, L), params),
        }
        rows.append(row)
        fmt = lambda b: "n/a" if b is None else f"{b / 2**20:.1f} MiB"  # noqa: E731
        fms = lambda t: "n/a" if t is None else f"{t:9.3f} ms"  # noqa: E731
        print(f"{impl:12s} batched H={args.H} N={args.batched_N} L={L:6d}: forward {fms(f_ms)}, "
              f"forward+backward {fms(fb_ms)}, peak {fmt(row['peak_bytes'])}, "
              f"temp (fwd+bwd) {fmt(row['temp_bytes'])}, temp (fwd) {fmt(row['forward_temp_bytes'])}", flush=True)
    return rows


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = result["meta"]
    batched = result["batched"]
    ncols = 2 if any(r["forward_ms"] is not None for r in batched) else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 4.6), squeeze=False)
    ax = axes[0, 0]
    Ns = sorted({r["N"] for r in result["single"]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, N in enumerate(Ns):
        for method, style in (("naive", "--o"), ("dplr", "-s")):
            rows = sorted((r for r in result["single"] if r["N"] == N and r["method"] == method), key=lambda r: r["L"])
            if rows:
                ax.plot([r["L"] for r in rows], [r["ms"] for r in rows], style, color=colors[i % len(colors)],
                        label=f"{method}, N={N}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time per kernel [ms] (median)")
    ax.set_title(f"One SSM kernel: naive (dashed) vs DPLR (solid)\n{meta['platform']}, {meta['dtype']}, jit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    batched = [r for r in batched if r["forward_ms"] is not None]
    if batched:
        ax = axes[0, 1]
        rows = sorted(batched, key=lambda r: r["L"])
        Ls = [r["L"] for r in rows]
        ax.plot(Ls, [r["forward_ms"] for r in rows], "-o", label="forward")
        ax.plot(Ls, [r["forward_backward_ms"] for r in rows], "-s", label="forward + backward")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel("time per layer [ms] (median)")
        ax.set_title(f"Batched DPLR kernels: H={rows[0]['H']} SSMs, N={rows[0]['N']}\n"
                     f"{meta['platform']}, {meta['dtype']}, jit(vmap)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    real, cplx = (np.float64, np.complex128) if args.x64 else (np.float32, np.complex64)
    device = jax.devices()[0]
    meta = {
        "device": str(device),
        "device_kind": getattr(device, "device_kind", "unknown"),
        "platform": "gpu" if device.platform in ("gpu", "cuda", "rocm") else device.platform,
        "jax_version": jax.__version__,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv if argv is None else [sys.argv[0], *argv]),
        "dtype": np.dtype(real).name,
        "repeats": args.repeats,
        "loadavg_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "min_time_s": args.min_time,
        "naive_system": "dense bilinear (Ab, Bb) of the real LegS matrix, step 1e-2",
        "dplr_system": "kernel_dplr_ctilde on make_dplr(N, 'legs'), random complex Ct, step 1e-2",
    }
    print(f"device: {meta['device']} ({meta['device_kind']}), jax {meta['jax_version']}, {meta['dtype']}", flush=True)
    single = [] if args.skip_single else single_benchmarks(args, real, cplx)
    batched = batched_benchmarks(args, real) if args.H > 0 else []
    result = {"meta": meta, "single": single, "batched": batched}
    if args.out:
        write_result(result, args.out)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return result


if __name__ == "__main__":
    main()
