"""Which variants make the sMNIST training step faster? Times each candidate alone on this device.

    python benchmarks/step_variants.py --out artifacts/bench/step_variants_gpu.json

Candidates (issue: GPU performance): FFT length (2L vs powers of two / 5-smooth sizes), FFT over
the time axis in place vs after a transpose, dropout random bits from threefry vs rbg, and the full
training step with each FFT length. Each figure is a median over repeats after warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import s4lite.layer as layer  # noqa: E402
from s4lite import engine  # noqa: E402
from s4lite.engine import TrainConfig, run_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import timeit, training_step  # noqa: E402


def conv_swap(u, K, n):
    L = u.shape[-2]
    y = jnp.fft.irfft(jnp.fft.rfft(jnp.swapaxes(u, -1, -2), n=n) * jnp.fft.rfft(K, n=n), n=n)[..., :L]
    return jnp.swapaxes(y, -1, -2)


def conv_axis(u, K, n):
    L = u.shape[-2]
    y = jnp.fft.irfft(jnp.fft.rfft(u, n=n, axis=-2) * jnp.fft.rfft(K, n=n).T, n=n, axis=-2)
    return y[..., :L, :]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=128)
    ap.add_argument("--L", type=int, default=784)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    engine.check_options(a, {"B": "int>=1", "L": "int>=1", "H": "int>=1", "layers": "int>=1"})
    key = jax.random.PRNGKey(0)
    u = jax.random.normal(key, (a.B, a.L, a.H))
    K = jax.random.normal(key, (a.H, a.L))
    res: dict = {"meta": {**run_info(), "command": " ".join(["python"] + sys.argv)}, "conv_fwd_bwd_ms": {}, "dropout_ms": {}, "step_ms": {}}
    sizes = sorted({2 * a.L, 1600, 1620, 2048})
    for name, fn in (("swap", conv_swap), ("axis", conv_axis)):
        for n in sizes:
            g = jax.jit(jax.grad(lambda u, K: jnp.sum(fn(u, K, n) ** 2), argnums=(0, 1)), static_argnums=())
            res["conv_fwd_bwd_ms"][f"{name}_n{n}"] = timeit(g, u, K) * 1e3 * a.layers
    g = jax.jit(jax.grad(lambda u, K: jnp.sum(layer.toeplitz_conv(u, K) ** 2), argnums=(0, 1)))
    res["conv_fwd_bwd_ms"]["toeplitz_f32"] = timeit(g, u, K) * 1e3 * a.layers
    g = jax.jit(jax.grad(lambda u, K: jnp.sum(layer.toeplitz_conv_bf16(u, K) ** 2), argnums=(0, 1)))
    res["conv_fwd_bwd_ms"]["toeplitz_bf16"] = timeit(g, u, K) * 1e3 * a.layers
    with jax.default_matmul_precision("highest"):
        g = jax.jit(jax.grad(lambda u, K: jnp.sum(layer.toeplitz_conv(u, K) ** 2), argnums=(0, 1)))
        res["conv_fwd_bwd_ms"]["toeplitz_f32_highest"] = timeit(g, u, K) * 1e3 * a.layers
    for impl in ("threefry2x32", "rbg", "unsafe_rbg"):
        k = jax.random.key(0, impl=impl)

        @jax.jit
        def masks(k):
            ks = jax.random.split(k, 2 * a.layers)
            return sum(jnp.sum(jax.random.bernoulli(kk, 0.75, (a.B, a.L, a.H))) for kk in ks)

        res["dropout_ms"][impl] = timeit(masks, k) * 1e3
    for n_mult in ("2L", "2048", "toeplitz", "toeplitz_bf16"):
        layer.fft_length = (lambda L, m=n_mult: 2048 if m == "2048" else 2 * L)
        for prng in ("threefry2x32", "rbg"):
            conv = n_mult if n_mult.startswith("toeplitz") else "fft"
            cfg = TrainConfig(prng=prng, conv=conv, d_model=a.H, n_layers=a.layers, batch_size=a.B)
            x_all = jax.random.normal(key, (a.B * 4, 28, 28))
            y_all = jax.random.randint(key, (a.B * 4,), 0, 10)
            train_step, state0, zeros, data = training_step(cfg, x_all, y_all)
            idx = jnp.arange(a.B)
            state = [state0, zeros]
            k = jax.random.key(1, impl=prng)

            def step():
                st, sums = train_step(state[0], state[1], data, idx, k)
                state[0], state[1] = st, sums
                return sums

            res["step_ms"][f"{n_mult}_{prng}"] = timeit(step, repeats=30) * 1e3
        print(json.dumps(res, indent=1), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
