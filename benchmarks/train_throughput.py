"""Training throughput of the deep S4 model on sMNIST-shaped data, on whatever device JAX sees.

    python benchmarks/train_throughput.py --d-model 128 --n-layers 4 --N 64 --batch-size 128 --out artifacts/bench/train_gpu.json

Times the real jitted training step of ``s4lite.train`` (AdamW, dropout, the same loss) on random
inputs of the sMNIST shape (L = 784), after warm-up, and splits the step into its parts by timing
each part alone, forward + backward, at the same shapes:

* ``kernel``: the S4 kernels of all layers (Theorem 3, conjugate symmetry, L/2+1 frequencies);
* ``fft_conv``: the FFT convolutions of all layers;
* ``rest``: the step minus those two (encoder, norms, GLU mixing, loss, optimizer, launch overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s4lite.layer import CONVOLUTIONS, resolve_kernel, s4_kernel  # noqa: E402
from s4lite.model import count_params, init_model  # noqa: E402
from s4lite.train import build_parser, make_optimizer, make_steps, run_info  # noqa: E402
from s4lite.viz.views import time_fn  # noqa: E402


# Median seconds of fn(*args) after 3 untimed calls, over 20 timed ones (the book's timing helper).
timeit = partial(time_fn, repeats=20, warmup=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--L", type=int, default=784)
    ap.add_argument("--steps", type=int, default=50, help="timed training steps")
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--conv", choices=["fft", "toeplitz", "toeplitz_bf16"], default="fft")
    ap.add_argument("--kernel", choices=["auto", "xla", "pallas"], default="auto")
    ap.add_argument("--prng", choices=["threefry2x32", "rbg"], default="threefry2x32")
    ap.add_argument("--out", default=None, help="write the JSON here")
    a = ap.parse_args()

    targs = build_parser().parse_args(
        ["--d-model", str(a.d_model), "--n-layers", str(a.n_layers), "--N", str(a.N), "--batch-size", str(a.batch_size), "--dropout", str(a.dropout), "--conv", a.conv, "--kernel", a.kernel, "--prng", a.prng]
    )
    key = jax.random.PRNGKey(0)
    params = init_model(key, 1, 10, a.d_model, a.n_layers, a.N)
    opt = make_optimizer(targs, 10_000, params)
    opt_state = opt.init(params)
    train_step, _ = make_steps(targs, opt, None)
    n = a.batch_size * 8
    side = int(round(np.sqrt(a.L)))
    if side * side != a.L:
        raise SystemExit("--L: expected a square number (images are side × side)")
    x_all = jax.random.normal(key, (n, side, side))
    y_all = jax.random.randint(key, (n,), 0, 10)
    idxs = [jnp.arange(i * a.batch_size, (i + 1) * a.batch_size) % n for i in range(8)]

    # warm-up (compilation)
    t0 = time.perf_counter()
    key = jax.random.key(0, impl=a.prng)
    params, opt_state, loss, _ = train_step(params, opt_state, x_all, y_all, idxs[0], key)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t0
    for i in range(5):
        params, opt_state, loss, _ = train_step(params, opt_state, x_all, y_all, idxs[i % 8], jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for i in range(a.steps):
        params, opt_state, loss, _ = train_step(params, opt_state, x_all, y_all, idxs[i % 8], jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    step_s = (time.perf_counter() - t0) / a.steps

    s4s = [p["s4"] for p in params["layers"]]

    @jax.jit
    def kernels_fb(s4s):
        return jax.grad(lambda ps: sum(jnp.sum(s4_kernel(p, a.L, a.kernel) ** 2) for p in ps))(s4s)

    u = jax.random.normal(jax.random.PRNGKey(1), (a.batch_size, a.L, a.d_model))
    K = jnp.stack([s4_kernel(p, a.L, a.kernel) for p in s4s])

    conv_fn = CONVOLUTIONS[a.conv]

    @jax.jit
    def conv_fb(u, K):
        def f(u, K):
            return sum(jnp.sum(conv_fn(u, K[i]) ** 2) for i in range(K.shape[0]))

        return jax.grad(f, argnums=(0, 1))(u, K)

    kernel_s = timeit(kernels_fb, s4s)
    key = jax.random.PRNGKey(0)
    conv_s = timeit(conv_fb, u, K)
    result = {
        "meta": {**run_info(), "command": " ".join(["python"] + sys.argv)},
        "config": {"d_model": a.d_model, "n_layers": a.n_layers, "N": a.N, "batch_size": a.batch_size, "L": a.L, "dropout": a.dropout, "conv": a.conv, "kernel": a.kernel, "kernel_resolved": resolve_kernel(a.kernel), "prng": a.prng, "n_params": count_params(params)},
        "compile_s": compile_s,
        "step_ms": step_s * 1e3,
        "samples_per_s": a.batch_size / step_s,
        "kernel_fwd_bwd_ms": kernel_s * 1e3,
        "fft_conv_fwd_bwd_ms": conv_s * 1e3,
        "rest_ms": max(step_s - kernel_s - conv_s, 0.0) * 1e3,
        "share": {
            "kernel": kernel_s / step_s,
            "fft_conv": conv_s / step_s,
            "rest": max(step_s - kernel_s - conv_s, 0.0) / step_s,
        },
    }
    print(json.dumps(result, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
