"""Convolution and dropout variants of the sMNIST training step, timed alone (forward + backward).

    python benchmarks/conv_variants.py --out artifacts/bench/conv_variants_gpu.json

Shapes of the book's model (batch 128, L 784, H 128) by default. Every convolution variant is also
compared with a float32 FFT convolution on the same inputs (``rel_err_*``; computed at
``jax.default_matmul_precision("highest")`` for the reference), so a faster variant that is wrong
shows it.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s4lite import fast_conv, layer, model, toeplitz_pallas  # noqa: E402
from s4lite.engine import check_options, fail  # noqa: E402
from s4lite.viz.common import time_fn  # noqa: E402


def median_ms(fn, *args, repeats: int) -> float:
    """Median milliseconds of ``fn(*args)`` after 3 untimed calls (the book's ``time_fn``)."""
    return 1e3 * time_fn(fn, *args, repeats=repeats, warmup=3)


def run_meta() -> dict:
    try:
        from s4lite.engine import run_info
    except ImportError:  # older layout
        from s4lite.train import run_info
    meta = run_info()
    meta["command"] = "python " + " ".join(sys.argv)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=128, help="B (default 128)")
    ap.add_argument("--L", type=int, default=784, help="sequence length (default 784)")
    ap.add_argument("--H", type=int, default=128, help="channels (default 128)")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls (default 20)")
    ap.add_argument("--blocks", type=int, nargs="+", default=[2, 4, 8], help="block counts of toeplitz_blocked")
    ap.add_argument("--out", default=None, help="write the JSON here")
    a = ap.parse_args(argv)
    check_options(a, {"batch_size": "int>=1", "L": "int>=1", "H": "int>=1", "repeats": "int>=1",
                      "blocks": "int>=1"})
    if a.out and Path(a.out).is_dir():
        fail(f"--out: expected a file path, got the directory {a.out}")

    k = jax.random.split(jax.random.PRNGKey(0), 3)
    u = jax.random.normal(k[0], (a.batch_size, a.L, a.H))
    K = jax.random.normal(k[1], (a.H, a.L)) * jnp.exp(-jnp.arange(a.L) / 200.0)
    w = jax.random.normal(k[2], u.shape)
    convs = {
        "fft": layer.fft_conv,
        "toeplitz_bf16": getattr(layer, "toeplitz_conv_bf16", None),
        "toeplitz_lean": fast_conv.toeplitz_conv_lean,
        "toeplitz_fftgrad": fast_conv.toeplitz_conv_fftgrad,
        "toeplitz_tiled": toeplitz_pallas.toeplitz_conv_tiled,  # (B, L, H): with its transposes
    }
    for n in a.blocks:  # the first block column only, n blocks
        convs[f"toeplitz_blocked{n}"] = partial(fast_conv.toeplitz_conv_blocked, n_blocks=n)
    with jax.default_matmul_precision("highest"):
        ref_y = jax.jit(layer.fft_conv)(u, K)
        ref_g = jax.jit(jax.grad(lambda u, K: jnp.sum(layer.fft_conv(u, K) * w), (0, 1)))(u, K)
    out: dict = {"meta": run_meta(), "shape": {"B": a.batch_size, "L": a.L, "H": a.H}}
    for name, conv in convs.items():
        if conv is None:
            continue
        loss = jax.jit(jax.value_and_grad(lambda u, K, c=conv: jnp.sum(c(u, K) * w), (0, 1)))
        fwd = jax.jit(conv)
        out[f"fwd_ms_{name}"] = median_ms(fwd, u, K, repeats=a.repeats)
        out[f"fwd_bwd_ms_{name}"] = median_ms(loss, u, K, repeats=a.repeats)
        y = fwd(u, K)
        _, (gu, gK) = loss(u, K)
        rel = lambda x, r: float(jnp.linalg.norm(x - r) / jnp.linalg.norm(r))  # noqa: E731
        out[f"rel_err_{name}"] = {"y": rel(y, ref_y), "du": rel(gu, ref_g[0]), "dK": rel(gK, ref_g[1])}
        print(name, out[f"fwd_ms_{name}"], out[f"fwd_bwd_ms_{name}"], out[f"rel_err_{name}"])
    x = jax.random.normal(k[0], (a.batch_size, a.L, a.H))
    key = jax.random.PRNGKey(3)

    def threefry(key, x):
        keep = jax.random.bernoulli(key, 0.75, x.shape)
        return jnp.where(keep, x / 0.75, 0)

    for name, fn in {"threefry_bernoulli": threefry, "bytes": lambda key, x: model.dropout_bytes(key, x, 0.25)}.items():
        out[f"dropout_ms_{name}"] = median_ms(jax.jit(fn), key, x, repeats=a.repeats)
        print(name, out[f"dropout_ms_{name}"])
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
