#!/usr/bin/env python
r"""Benchmark: the selective scan, sequential vs parallel, and the S4D vs the S4 kernel.

*Scan.* For every L in ``--L`` and every ``D_in×N`` in ``--sizes``: one sequence, inputs
``u, Δ (L, D_in)``, ``A (D_in, N)``, ``B, C (L, N)``; :func:`s4lite.selective.selective_scan` with
``method="sequential"`` (``lax.scan``: L dependent steps) and ``"parallel"``
(``lax.associative_scan``: O(log L) depth, about twice the work), forward and forward + backward.

*Kernel.* H SSMs of state size N (``--kernel-H``, ``--kernel-N``) at every L: the S4D layer kernel
(:func:`s4lite.s4d.kernel_s4d_layer`, ZOH, one Vandermonde product per channel) vs the S4 DPLR
layer kernel (:func:`s4lite.layer.s4_kernel`, Cauchy + Woodbury + FFT; ``--s4-kernel`` picks its
backend), forward and forward + backward.

Times are medians of jitted calls after a warm-up (``benchmarks/kernel.py``'s ``time_ms``). Output:
JSON ``{"meta": {command, commit, device, device_kind, platform, date, jax_version, dtype},
"scan": [{method, L, D_in, N, ms, fwd_bwd_ms}], "kernel": [{impl, H, N, L, ms, fwd_bwd_ms}]}``.

Examples::

    python benchmarks/selective_scan.py --quick --out /tmp/scan.json           # CPU smoke test
    python benchmarks/selective_scan.py --out artifacts/bench/selective_scan_gpu.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernel import git_commit, time_ms, write_result  # noqa: E402  (benchmarks/kernel.py)

DEFAULT_L = [256, 1024, 4096, 16384]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--L", type=int, nargs="+", default=DEFAULT_L, help="sequence lengths")
    p.add_argument("--sizes", nargs="+", default=["64x16", "256x16", "1024x16"], help="D_in x N of the scan")
    p.add_argument("--kernel-H", type=int, default=256, help="channels of the kernel comparison (0: skip it)")
    p.add_argument("--kernel-N", type=int, default=64, help="state size of the kernel comparison")
    p.add_argument("--s4-kernel", choices=["auto", "xla", "pallas"], default="auto", help="backend of the S4 kernel")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.2)
    p.add_argument("--quick", action="store_true", help="tiny sizes for a CPU smoke test")
    p.add_argument("--out", default=None, help="write the JSON record here")
    from s4lite.options import fail

    args = p.parse_args(argv)
    if args.quick:
        args.L, args.sizes, args.kernel_H, args.kernel_N, args.repeats, args.min_time = [32, 64], ["4x4"], 4, 8, 1, 0.0
    for L in args.L:
        if L < 1:
            fail(f"--L: expected integers >= 1, got {L}")
    parsed = []
    for s in args.sizes:
        parts = s.lower().split("x")
        if len(parts) != 2 or not all(x.isdigit() and int(x) >= 1 for x in parts):
            fail(f"--sizes: expected D_INxN with positive integers (e.g. 256x16), got {s!r}")
        parsed.append((int(parts[0]), int(parts[1])))
    args.sizes = parsed
    if args.kernel_H < 0 or args.kernel_N < 2 or args.kernel_N % 2:
        fail(f"--kernel-N: expected an even integer >= 2 (and --kernel-H >= 0), got {args.kernel_N}")
    if args.repeats < 1:
        fail(f"--repeats: expected an integer >= 1, got {args.repeats}")
    return args


def scan_rows(args: argparse.Namespace) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from s4lite.selective import selective_scan

    rows = []
    for d_in, n in args.sizes:
        for L in args.L:
            k = jax.random.split(jax.random.PRNGKey(L + d_in), 5)
            u = jax.random.normal(k[0], (L, d_in))
            delta = jax.nn.softplus(jax.random.normal(k[1], (L, d_in)) - 3.0)
            A = -jnp.exp(jax.random.normal(k[2], (d_in, n)))
            B, C = jax.random.normal(k[3], (L, n)), jax.random.normal(k[4], (L, n))
            for method in ("sequential", "parallel"):
                f = jax.jit(lambda u, dl, m=method: selective_scan(u, dl, A, B, C, method=m))
                g = jax.jit(jax.grad(lambda u, dl, m=method: jnp.sum(selective_scan(u, dl, A, B, C, method=m) ** 2),
                                     argnums=(0, 1)))  # fmt: skip
                ms = time_ms(lambda: f(u, delta), args.repeats, args.min_time)
                fb = time_ms(lambda: g(u, delta), args.repeats, args.min_time)
                rows.append({"method": method, "L": L, "D_in": d_in, "N": n, "ms": ms, "fwd_bwd_ms": fb})
                print(f"scan {method:10s} D_in={d_in:5d} N={n:3d} L={L:6d}: {ms:9.3f} ms, fwd+bwd {fb:9.3f} ms", flush=True)
    return rows


def kernel_rows(args: argparse.Namespace) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from s4lite.engine import resolve_backend
    from s4lite.layer import init_s4
    from s4lite.s4d import init_s4d_layer, kernel_s4d_layer

    if args.kernel_H == 0:
        return []
    key = jax.random.PRNGKey(0)
    s4_kernel = resolve_backend("s4", "fft", args.s4_kernel).kernel
    impls = {
        "s4d": (init_s4d_layer(key, args.kernel_H, args.kernel_N, "lin"), lambda p, L: kernel_s4d_layer(p, L)),
        "s4": (init_s4(key, args.kernel_H, args.kernel_N), lambda p, L: s4_kernel(p, L)),
    }
    rows = []
    for L in args.L:
        for impl, (params, fn) in impls.items():
            f = jax.jit(lambda p, fn=fn, L=L: fn(p, L))
            g = jax.jit(jax.grad(lambda p, fn=fn, L=L: jnp.sum(fn(p, L) ** 2)))
            ms = time_ms(lambda: f(params), args.repeats, args.min_time)
            fb = time_ms(lambda: g(params), args.repeats, args.min_time)
            rows.append({"impl": impl, "H": args.kernel_H, "N": args.kernel_N, "L": L, "ms": ms, "fwd_bwd_ms": fb})
            print(f"kernel {impl:4s} H={args.kernel_H} N={args.kernel_N} L={L:6d}: {ms:9.3f} ms, fwd+bwd {fb:9.3f} ms",
                  flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import jax

    device = jax.devices()[0]
    meta = {
        "command": " ".join(["python benchmarks/selective_scan.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": git_commit(),
        "device": str(device),
        "device_kind": getattr(device, "device_kind", device.platform),
        "platform": device.platform,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__,
        "dtype": "float32",
        "repeats": args.repeats,
        "min_time_s": args.min_time,
    }
    print(f"device: {meta['device']} ({meta['device_kind']}), jax {meta['jax_version']}", flush=True)
    result = {"meta": meta, "scan": scan_rows(args), "kernel": kernel_rows(args)}
    if args.out:
        write_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
