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
import dataclasses
import json
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s4lite import engine  # noqa: E402
from s4lite.engine import TrainConfig, make_optimizer, resolve, run_info  # noqa: E402
from s4lite.model import count_params  # noqa: E402
from s4lite.toeplitz_pallas import TILES  # noqa: E402
from s4lite.train import smnist_task  # noqa: E402
from s4lite.viz.views import time_fn  # noqa: E402

# the implementation options and their choices, as the training CLI has them
CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig) if f.metadata.get("choices")}


# Median seconds of fn(*args) after 3 untimed calls, over 20 timed ones (the book's timing helper).
timeit = partial(time_fn, repeats=20, warmup=3)

RULES = {"d_model": "int>=1", "n_layers": "int>=1", "N": "even>=2", "batch_size": "int>=1", "L": "int>=1",
         "steps": "int>=1", "dropout": "[0,1)"}  # fmt: skip


def training_step(cfg: TrainConfig, x_all, y_all):
    """The jitted training step of ``s4lite.train`` for ``cfg``, its initial state and zero sums."""
    arrays = {"x_train": x_all, "y_train": y_all, "x_test": x_all[:1], "y_test": y_all[:1], "source": "random"}
    task = smnist_task(cfg, arrays, resolve(cfg))
    params = task.init(jax.random.PRNGKey(0))
    opt = make_optimizer(cfg, 10_000, params, task.labels(params))
    state = {"params": params, "opt": opt.init(params)}
    step, _ = engine.make_steps(task, opt, cfg.ema)
    return step, state, engine.zero_sums(task, state, task.train, cfg.batch_size), task.train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--L", type=int, default=784)
    ap.add_argument("--steps", type=int, default=50, help="timed training steps")
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--conv", choices=CHOICES["conv"], default="auto")
    ap.add_argument("--kernel", choices=CHOICES["kernel"], default="auto")
    ap.add_argument("--prng", choices=["threefry2x32", "rbg"], default="threefry2x32")
    ap.add_argument("--activations", choices=CHOICES["activations"], default="auto")
    ap.add_argument("--dropout-bits", choices=CHOICES["dropout_bits"], default="auto")
    ap.add_argument("--out", default=None, help="write the JSON here")
    a = ap.parse_args()
    engine.check_options(a, RULES)
    side = int(round(np.sqrt(a.L)))
    if side * side != a.L:
        engine.fail("--L: expected a square number (images are side × side)")

    cfg = TrainConfig(d_model=a.d_model, n_layers=a.n_layers, N=a.N, batch_size=a.batch_size, dropout=a.dropout,
                      conv=a.conv, kernel=a.kernel, prng=a.prng, activations=a.activations,
                      dropout_bits=a.dropout_bits, progress=False)  # fmt: skip
    try:
        backend = resolve(cfg)
    except ValueError as err:
        engine.fail(f"--{err}")
    key = jax.random.PRNGKey(0)
    n = a.batch_size * 8
    x_all = jax.random.normal(key, (n, side, side))
    y_all = jax.random.randint(key, (n,), 0, 10)
    train_step, state, zeros, data = training_step(cfg, x_all, y_all)
    params = state["params"]
    idxs = [jnp.arange(i * a.batch_size, (i + 1) * a.batch_size) % n for i in range(8)]

    # warm-up (compilation)
    t0 = time.perf_counter()
    key = jax.random.key(0, impl=a.prng)
    state, sums = train_step(state, jax.tree.map(jnp.copy, zeros), data, idxs[0], key)
    jax.block_until_ready(sums)
    compile_s = time.perf_counter() - t0
    for i in range(5):
        state, sums = train_step(state, sums, data, idxs[i % 8], jax.random.fold_in(key, i))
    jax.block_until_ready(sums)
    t0 = time.perf_counter()
    for i in range(a.steps):
        state, sums = train_step(state, sums, data, idxs[i % 8], jax.random.fold_in(key, i))
    jax.block_until_ready(sums)
    step_s = (time.perf_counter() - t0) / a.steps

    s4s = [p["s4"] for p in state["params"]["layers"]]

    @jax.jit
    def kernels_fb(s4s):
        return jax.grad(lambda ps: sum(jnp.sum(backend.kernel(p, a.L) ** 2) for p in ps))(s4s)

    shape = (a.d_model, a.batch_size, a.L) if backend.channels_first else (a.batch_size, a.L, a.d_model)
    u = jax.random.normal(jax.random.PRNGKey(1), shape).astype(backend.dtype or jnp.float32)
    K = jnp.stack([backend.kernel(p, a.L) for p in s4s])

    @jax.jit
    def conv_fb(u, K):
        def f(u, K):
            return sum(jnp.sum(backend.conv(u, K[i]) ** 2) for i in range(K.shape[0]))

        return jax.grad(f, argnums=(0, 1))(u, K)

    kernel_s = timeit(kernels_fb, s4s)
    conv_s = timeit(conv_fb, u, K)
    resolved, conv_resolved = engine.resolve_kernel(a.kernel), engine.resolve_conv(a.conv)
    result = {
        "meta": {**run_info(), "command": " ".join(["python"] + sys.argv)},
        "config": {"d_model": a.d_model, "n_layers": a.n_layers, "N": a.N, "batch_size": a.batch_size, "L": a.L,
                   "dropout": a.dropout, "conv": a.conv, "conv_resolved": conv_resolved, "kernel": a.kernel,
                   "kernel_resolved": resolved, "activations": a.activations, "dropout_bits": a.dropout_bits,
                   "activations_resolved": engine.resolve_activations(a.activations, a.conv),
                   "dropout_bits_resolved": engine.resolve_dropout_bits(a.dropout_bits),
                   "prng": a.prng, "n_params": count_params(params), "channels_first": backend.channels_first,
                   "tiles": dict(TILES) if conv_resolved == "toeplitz_tiled" else None},  # fmt: skip
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
