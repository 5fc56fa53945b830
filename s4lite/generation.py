r"""Generating digits pixel by pixel: train as a CNN, generate as an RNN.

An autoregressive model of sMNIST predicts each pixel (one of 256 grey levels) from the pixels
before it:

.. math::
    p(x_0, \dots, x_{L-1}) = \prod_{t} p(x_t \mid x_{<t}), \qquad
    \text{input}_t = \text{encode}(x_{t-1}),\ \text{input}_0 = \text{start}

Training uses the convolution view (all 784 positions at once, causal by construction). Sampling
uses the recurrent view (:func:`s4lite.model.step_outputs`, Theorem 2): O(N) work per pixel and
layer, instead of re-running the whole convolution for every new pixel.

Run it: ``python -m s4lite.generation --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .model import count_params, init_model, init_recurrent, sequence_outputs, step_outputs

Array = jax.Array
LEVELS = 256
START = 0.0  # the input before the first pixel


def encode(pixels: Array) -> Array:
    """Grey levels 0…255 → inputs in [−1, 1] with a trailing channel axis: ``(…)`` → ``(…, 1)``."""
    return (pixels.astype(jnp.float32) * (2.0 / 255.0) - 1.0)[..., None]


def shift_right(pixels: Array) -> Array:
    """Inputs for next-pixel prediction: ``(B, L)`` pixels → ``(B, L, 1)``, input_t = encode(x_{t−1})."""
    x = encode(pixels)
    start = jnp.full_like(x[:, :1], START)
    return jnp.concatenate([start, x[:, :-1]], axis=1)


def nll(params: dict[str, Any], pixels: Array, key: Array | None = None, rate: float = 0.0, conv: str = "fft") -> Array:
    """Mean negative log-likelihood per pixel, in nats, of ``pixels (B, L)`` (int)."""
    logits = sequence_outputs(params, shift_right(pixels), key, rate, conv)
    return optax.softmax_cross_entropy_with_integer_labels(logits, pixels.astype(jnp.int32)).mean()


def generate(
    params: dict[str, Any], forms: list, key: Array, prefix: Array, length: int, temperature: float = 1.0
) -> tuple[Array, Array]:
    """Sample ``(B, length)`` pixels in RNN mode; the first ``prefix.shape[1]`` are given (teacher forcing).

    Returns the pixels and the logits ``(B, length, 256)`` the network produced at every step.
    ``prefix`` may have zero columns (unconditional samples).
    """
    B, P = prefix.shape
    states = [jnp.zeros((B,) + C.shape, C.dtype) for _, C in forms]
    step = jax.vmap(step_outputs, in_axes=(None, None, 0, 0))
    given = jnp.zeros((B, length), jnp.int32).at[:, :P].set(prefix.astype(jnp.int32))

    def body(carry, t):
        states, prev, key = carry
        key, k = jax.random.split(key)
        x_t = jnp.where(t == 0, jnp.full((B, 1), START), encode(prev))
        states, logits = step(params, forms, states, x_t)
        sampled = jax.random.categorical(k, logits / temperature, axis=-1)
        pixel = jnp.where(t < P, given[:, t], sampled).astype(jnp.int32)
        return (states, pixel, key), (pixel, logits)

    init = (states, jnp.zeros((B,), jnp.int32), key)
    _, (pixels, logits) = jax.lax.scan(body, init, jnp.arange(length))
    return pixels.T, jnp.swapaxes(logits, 0, 1)


_all_logits = jax.jit(sequence_outputs)


def generate_by_convolution(params: dict[str, Any], key: Array, batch: int, steps: int, length: int) -> Array:
    """The slow way, for the speed comparison: re-run the whole convolution model for every new pixel."""
    pixels = jnp.zeros((batch, length), jnp.int32)
    for t in range(steps):
        key, k = jax.random.split(key)
        logits = _all_logits(params, shift_right(pixels))[:, t]
        pixels = pixels.at[:, t].set(jax.random.categorical(k, logits, axis=-1))
    return pixels


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from safetensors.numpy import save_file

    from .data import load_mnist, load_sample
    from .train import run_info

    ap = argparse.ArgumentParser(prog="python -m s4lite.generation", description="Autoregressive sMNIST: train (CNN view), sample (RNN view).")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ssm-lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--conv", choices=["fft", "toeplitz"], default="fft", help="convolution used in training")
    ap.add_argument("--length", type=int, default=784, help="pixels per sequence (784 = whole digit)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sample", action="store_true", help="use the shipped sample (CPU demos)")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--n-samples", type=int, default=64)
    ap.add_argument("--speed-steps", type=int, default=32, help="pixels generated when timing the convolution way")
    ap.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/generation")
    ap.add_argument("--load", default=None, help="an earlier run's directory: skip training, reuse its parameters and NLL history, redo the checks and sampling")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = run_info()
    print(f"device: {info['device']} ({info['device_kind']})", flush=True)
    if args.sample:
        s = load_sample()
        xtr, xte, source = s["x_train"], s["x_test"], "shipped sample"
    else:
        xtr, _ = load_mnist("train", args.data_dir)
        xte, _ = load_mnist("test", args.data_dir)
        source = "MNIST train (10k subset where that is what the data dir holds) / official test"
    L = args.length
    train = jnp.asarray(xtr.reshape(len(xtr), -1)[: args.limit_train, :L])
    test = jnp.asarray(xte.reshape(len(xte), -1)[: args.limit_test, :L])

    from .train import make_optimizer

    targs = argparse.Namespace(lr=args.lr, ssm_lr=args.ssm_lr, weight_decay=0.0, warmup_frac=0.05)
    steps = train.shape[0] // args.batch_size
    if steps < 1:
        raise SystemExit(f"--batch-size: {args.batch_size} is larger than the {train.shape[0]} training digits")
    params = init_model(jax.random.PRNGKey(args.seed), 1, LEVELS, args.d_model, args.n_layers, args.N)
    opt = make_optimizer(targs, steps * args.epochs, params)
    opt_state = opt.init(params)

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, idx, key):
        loss, grads = jax.value_and_grad(nll)(params, train[idx], key, args.dropout, args.conv)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    test_nll_fn = jax.jit(lambda p, x: nll(p, x, conv=args.conv))

    def test_nll(params) -> float:
        eb = min(500, test.shape[0])
        return float(np.mean([test_nll_fn(params, test[i : i + eb]) for i in range(0, test.shape[0] - eb + 1, eb)]))

    config = {**vars(args), "command": "python -m s4lite.generation " + " ".join(sys.argv[1:] if argv is None else argv), "data_source": source, "n_params": count_params(params), **info}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    history, t_train = [], 0.0
    key = jax.random.PRNGKey(args.seed + 1)
    if args.load is not None:
        params = load_params(Path(args.load) / "params.safetensors", args.d_model, args.n_layers, args.N)
        earlier = json.loads((Path(args.load) / "metrics.json").read_text())
        history, t_train = earlier["history"], earlier["train_time_s"]
        config["trained_by"] = json.loads((Path(args.load) / "config.json").read_text())
        (out / "config.json").write_text(json.dumps(config, indent=1))
    for epoch in range(0 if args.load is None else args.epochs, args.epochs):
        t0 = time.perf_counter()
        k_epoch = jax.random.fold_in(key, epoch)
        order = jax.random.permutation(k_epoch, train.shape[0])
        total = jnp.zeros(())
        for s in range(steps):
            idx = jax.lax.dynamic_slice(order, (s * args.batch_size,), (args.batch_size,))
            params, opt_state, loss = train_step(params, opt_state, idx, jax.random.fold_in(k_epoch, s + 1))
            total = total + loss
        train_nll = float(total) / steps
        t_train += time.perf_counter() - t0
        if not math.isfinite(train_nll):
            raise SystemExit(f"training diverged in epoch {epoch + 1} (NLL {train_nll}); try a smaller --lr")
        row = {"epoch": epoch + 1, "train_nll": train_nll, "test_nll": test_nll(params), "train_time": t_train}
        row["test_bits_per_pixel"] = row["test_nll"] / math.log(2)
        history.append(row)
        print(f"epoch {epoch + 1:3d}  train NLL {train_nll:.4f}  test NLL {row['test_nll']:.4f} nats = {row['test_bits_per_pixel']:.4f} bits/pixel", flush=True)
        if args.time_budget is not None and t_train >= args.time_budget:
            break

    # RNN == CNN check on a test sequence, then sampling in RNN mode.
    forms, _ = init_recurrent(params, L)
    with jax.default_matmul_precision("highest"):
        cnn = sequence_outputs(params, shift_right(test[:2]))
        _, rnn = jax.jit(generate, static_argnums=(4,))(params, forms, key, test[:2], L)
    diff = float(jnp.max(jnp.abs(cnn - rnn)))
    scale = float(jnp.max(jnp.abs(cnn)))
    print(f"RNN vs CNN logits on 2 test digits: max |diff| = {diff:.2e} (max |logit| {scale:.1f})", flush=True)

    B = args.n_samples
    gen = jax.jit(generate, static_argnums=(4,))
    half = L // 2
    k_c, k_u, k_s = jax.random.split(jax.random.PRNGKey(args.seed + 2), 3)
    originals = test[:B]
    completions, _ = gen(params, forms, k_c, originals[:, :half], L)
    unconditional, _ = gen(params, forms, k_u, jnp.zeros((B, 0), jnp.int32), L)
    jax.block_until_ready(unconditional)
    t0 = time.perf_counter()
    timed, _ = gen(params, forms, k_s, jnp.zeros((B, 0), jnp.int32), L)
    jax.block_until_ready(timed)
    rnn_pixels_per_s = B * L / (time.perf_counter() - t0)
    generate_by_convolution(params, k_s, B, 2, L)  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(generate_by_convolution(params, k_s, B, args.speed_steps, L))
    conv_pixels_per_s = B * args.speed_steps / (time.perf_counter() - t0)
    print(f"generation speed, batch {B}: RNN {rnn_pixels_per_s:,.0f} pixels/s, re-running the convolution {conv_pixels_per_s:,.0f} pixels/s", flush=True)

    metrics = {
        "history": history,
        "final_test_nll_nats": history[-1]["test_nll"],
        "final_test_bits_per_pixel": history[-1]["test_bits_per_pixel"],
        "rnn_vs_cnn_max_abs_diff": diff,
        "rnn_vs_cnn_max_abs_logit": scale,
        "rnn_pixels_per_s": rnn_pixels_per_s,
        "conv_pixels_per_s": conv_pixels_per_s,
        "speed_batch": B,
        "conv_speed_steps": args.speed_steps,
        "train_time_s": t_train,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    np.savez_compressed(
        out / "samples.npz",
        originals=np.asarray(originals, np.uint8),
        completions=np.asarray(completions, np.uint8),
        unconditional=np.asarray(unconditional, np.uint8),
        prefix_length=np.asarray(half),
    )
    flat = {f"{i:04d}": np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(params))}
    save_file(flat, str(out / "params.safetensors"), metadata={"config": json.dumps({k: config[k] for k in ("d_model", "n_layers", "N", "length")})})
    return metrics


def load_params(path: str | Path, d_model: int, n_layers: int, N: int) -> dict[str, Any]:
    """Parameters saved by :func:`main` (safetensors, leaves in tree order) back into the model's tree."""
    from safetensors.numpy import load_file

    template = init_model(jax.random.PRNGKey(0), 1, LEVELS, d_model, n_layers, N)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    tensors = load_file(str(path))
    if len(tensors) != len(leaves):
        raise ValueError(f"path: {path} holds {len(tensors)} arrays, the model has {len(leaves)}")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(tensors[f"{i:04d}"]) for i in range(len(leaves))])


if __name__ == "__main__":
    main()
