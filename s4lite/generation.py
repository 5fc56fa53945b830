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

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import engine
from .data import SEQ_LEN
from .engine import TrainConfig, option
from .model import DEFAULT, Backend, init_model, init_recurrent, sequence_outputs, step_outputs

Array = jax.Array
LEVELS = 256
START = 0.0  # the input before the first pixel
PROG = "python -m s4lite.generation"


def encode(pixels: Array) -> Array:
    """Grey levels 0…255 → inputs in [−1, 1] with a trailing channel axis: ``(…)`` → ``(…, 1)``."""
    return (pixels.astype(jnp.float32) * (2.0 / 255.0) - 1.0)[..., None]


def shift_right(pixels: Array) -> Array:
    """Inputs for next-pixel prediction: ``(B, L)`` pixels → ``(B, L, 1)``, input_t = encode(x_{t−1})."""
    x = encode(pixels)
    start = jnp.full_like(x[:, :1], START)
    return jnp.concatenate([start, x[:, :-1]], axis=1)


def nll(
    params: dict[str, Any],
    pixels: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """Mean negative log-likelihood per pixel, in nats, of ``pixels (B, L)`` (int)."""
    return jnp.mean(nll_per_sequence(params, pixels, key, rate, backend))


def nll_per_sequence(
    params: dict[str, Any],
    pixels: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """Mean NLL per pixel of each sequence, ``(B,)`` nats."""
    logits = sequence_outputs(params, shift_right(pixels), key, rate, backend)
    targets = pixels.astype(jnp.int32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(axis=-1)


@dataclass
class GenerationConfig(TrainConfig):
    """The run configuration of the generator (other defaults, five more options)."""

    epochs: int = option(30, "passes over the training data", check="int>=1")
    batch_size: int = option(64, "training examples per step", check="int>=1")
    lr: float = option(2e-3, "peak learning rate of the non-SSM parameters", check=">=0")
    weight_decay: float = option(0.0, "AdamW weight decay of the non-SSM parameters", check=">=0")
    dropout: float = option(0.0, "dropout rate after the SSM and after the GLU", check="[0,1)")
    eval_batch: int = option(500, "test sequences per evaluation batch", check="int>=1")
    out: str = option("runs/generation", "run directory")
    length: int = option(SEQ_LEN, "pixels per sequence (784 = whole digit)", check="int>=1")
    n_samples: int = option(64, "digits sampled (completions and unconditional)", check="int>=1")
    speed_steps: int = option(32, "pixels generated when timing the convolution way", check="int>=1")
    load: str | None = option(None, "an earlier run's directory: reuse its parameters and history, skip training")


SKIP = ("task", "augment", "ema", "kernel")
ARCHITECTURE = ("ssm", "init", "discretization", "d_model", "n_layers", "N", "length")


def pixel_task(cfg: GenerationConfig, train: Array, test: Array, backend: Backend) -> engine.Task:
    """Next-pixel prediction with the deep model of ``cfg`` (256 grey levels out)."""
    init_layer = engine.init_layer_fn(cfg)

    def init(key):
        return init_model(key, 1, LEVELS, cfg.d_model, cfg.n_layers, cfg.N, init_layer=init_layer)

    def loss(params, batch, key):
        return nll(params, batch["x"], key, cfg.dropout, backend), {}

    def evaluate(params, batch):
        return {"nll": nll_per_sequence(params, batch["x"], backend=backend)}

    return engine.Task("generation", init, loss, evaluate, {"x": train}, {"x": test}, loss_name="nll")


def load_run(run_dir: str | Path, cfg: GenerationConfig, argv: list[str]) -> tuple[dict, GenerationConfig, dict]:
    """Parameters, architecture and records of an earlier run; a contradicting option is refused."""
    run_dir = Path(run_dir)
    legacy = not (run_dir / engine.CHECKPOINT).exists() and (run_dir / "params.safetensors").exists()
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        trained_by = json.loads((run_dir / "config.json").read_text())
        if legacy:  # a run of the first version: architecture in config.json, leaves in tree order
            recorded = {"ssm": "s4", "init": "legs", "discretization": "bilinear", **trained_by}
        else:
            tensors, meta = engine.read_checkpoint(run_dir / engine.CHECKPOINT)
            recorded = meta["config"]
    except (engine.CheckpointError, OSError, json.JSONDecodeError) as err:
        engine.fail(f"--load: {err}")
    given = {name for name in ARCHITECTURE if any(a.split("=")[0] == engine.flag(name) for a in argv)}
    clash = [f"{engine.flag(n)} {getattr(cfg, n)} (the run has {recorded[n]})"
             for n in sorted(given) if getattr(cfg, n) != recorded[n]]  # fmt: skip
    if clash:
        engine.fail(f"--load: the architecture is read from {run_dir}; these options contradict it: " + ", ".join(clash))
    cfg = GenerationConfig(**{**engine.record_config(cfg), **{n: recorded[n] for n in ARCHITECTURE}})
    template = jax.eval_shape(lambda k: pixel_task(cfg, None, None, DEFAULT).init(k), jax.random.PRNGKey(0))
    try:
        if legacy:
            params = load_params(run_dir / "params.safetensors", cfg.d_model, cfg.n_layers, cfg.N)
        else:
            params = engine.unflatten(template, "params", tensors, run_dir / engine.CHECKPOINT)
    except (engine.CheckpointError, ValueError, OSError) as err:
        engine.fail(f"--load: {err}")
    return params, cfg, {"metrics": metrics, "config": trained_by}


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


_all_logits = jax.jit(sequence_outputs)  # default backend


def generate_by_convolution(params: dict[str, Any], key: Array, batch: int, steps: int, length: int) -> Array:
    """The slow way, for the speed comparison: re-run the whole convolution model for every new pixel."""
    pixels = jnp.zeros((batch, length), jnp.int32)
    for t in range(steps):
        key, k = jax.random.split(key)
        logits = _all_logits(params, shift_right(pixels))[:, t]
        pixels = pixels.at[:, t].set(jax.random.categorical(k, logits, axis=-1))
    return pixels


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or ``--load``), check RNN == CNN, sample, and time the two ways of generating."""
    from .data import load_mnist, load_sample

    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = engine.parse(GenerationConfig, PROG, "Autoregressive sMNIST: train (CNN), sample (RNN).", argv, SKIP)
    if cfg.length > SEQ_LEN:
        engine.fail(f"--length: expected at most {SEQ_LEN} pixels, got {cfg.length}")
    earlier = None
    if cfg.load is not None:
        params, cfg, earlier = load_run(cfg.load, cfg, argv)
    out = engine.prepare_out(cfg)
    info = engine.run_info()
    print(f"device: {info['device']} ({info['device_kind']})", flush=True)

    def load():
        if cfg.sample:
            s = load_sample()
            return s["x_train"], s["x_test"], "shipped sample"
        (xtr, _, src_train), (xte, _, src_test) = (load_mnist(split, cfg.data_dir) for split in ("train", "test"))
        return xtr, xte, f"{src_train}; test: {src_test}"

    xtr, xte, source = engine.load_data(load)
    L = cfg.length
    train = jnp.asarray(xtr.reshape(len(xtr), -1)[: cfg.limit_train, :L])
    test = jnp.asarray(xte.reshape(len(xte), -1)[: cfg.limit_test, :L])
    backend = engine.resolve(cfg)
    command = PROG + " " + " ".join(argv)
    if earlier is None:
        task = pixel_task(cfg, train, test, backend)
        task.source = source
        result = engine.fit(cfg, task, command=command, prog=PROG)
        params, history = result.params, result.history
        for row in history:
            row["test_bits_per_pixel"] = row["test_nll"] / math.log(2)
        config = json.loads((out / "config.json").read_text())
    else:
        history = earlier["metrics"]["history"]
        config = {**engine.record_config(cfg), "command": command, "data_source": source, **info,
                  "trained_by": earlier["config"]}  # fmt: skip
        engine.write_json(out / "config.json", config)
    train_time = history[-1]["train_time"] if history else 0.0
    metrics = sample_and_time(cfg, params, test, history, train_time)
    engine.write_json(out / "metrics.json", metrics)
    return metrics


def sample_and_time(cfg: GenerationConfig, params: Any, test: Array, history: list, train_time: float) -> dict:
    """RNN == CNN on two test digits, completions, unconditional samples, and the two speeds."""
    L = cfg.length
    forms, _ = init_recurrent(params, L)
    key = jax.random.PRNGKey(cfg.seed + 1)
    gen = jax.jit(generate, static_argnums=(4,))
    with jax.default_matmul_precision("highest"):
        cnn = _all_logits(params, shift_right(test[:2]))  # compiled, as when sampling by convolution
        _, rnn = gen(params, forms, key, test[:2], L)
    diff, scale = float(jnp.max(jnp.abs(cnn - rnn))), float(jnp.max(jnp.abs(cnn)))
    print(f"RNN vs CNN logits on 2 test digits: max |diff| = {diff:.2e} (max |logit| {scale:.1f})", flush=True)
    B, half = cfg.n_samples, L // 2
    k_c, k_u, k_s = jax.random.split(jax.random.PRNGKey(cfg.seed + 2), 3)
    originals = test[:B]
    completions, _ = gen(params, forms, k_c, originals[:, :half], L)
    unconditional, _ = gen(params, forms, k_u, jnp.zeros((B, 0), jnp.int32), L)
    jax.block_until_ready(unconditional)
    t0 = time.perf_counter()
    jax.block_until_ready(gen(params, forms, k_s, jnp.zeros((B, 0), jnp.int32), L))
    rnn_pixels_per_s = B * L / (time.perf_counter() - t0)
    generate_by_convolution(params, k_s, B, 2, L)  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(generate_by_convolution(params, k_s, B, cfg.speed_steps, L))
    conv_pixels_per_s = B * cfg.speed_steps / (time.perf_counter() - t0)
    print(f"generation speed, batch {B}: RNN {rnn_pixels_per_s:,.0f} pixels/s, re-running the convolution "
          f"{conv_pixels_per_s:,.0f} pixels/s", flush=True)  # fmt: skip
    np.savez_compressed(
        Path(cfg.out) / "samples.npz",
        originals=np.asarray(originals, np.uint8),
        completions=np.asarray(completions, np.uint8),
        unconditional=np.asarray(unconditional, np.uint8),
        prefix_length=np.asarray(half),
    )
    return {
        "history": history,
        "final_test_nll_nats": history[-1]["test_nll"],
        "final_test_bits_per_pixel": history[-1]["test_nll"] / math.log(2),
        "rnn_vs_cnn_max_abs_diff": diff,
        "rnn_vs_cnn_max_abs_logit": scale,
        "rnn_pixels_per_s": rnn_pixels_per_s,
        "conv_pixels_per_s": conv_pixels_per_s,
        "speed_batch": B,
        "conv_speed_steps": cfg.speed_steps,
        "train_time_s": train_time,
    }


def load_params(path: str | Path, d_model: int, n_layers: int, N: int) -> dict[str, Any]:
    """Parameters from a ``params.safetensors`` of the first generation runs (leaves in tree order;
    the architecture must be given). Runs made since keep them in their checkpoint: :func:`load_run`."""
    from safetensors.numpy import load_file

    template = init_model(jax.random.PRNGKey(0), 1, LEVELS, d_model, n_layers, N)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    tensors = load_file(str(path))
    if len(tensors) != len(leaves):
        raise ValueError(f"path: {path} holds {len(tensors)} arrays, the model has {len(leaves)}")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(tensors[f"{i:04d}"]) for i in range(len(leaves))])


if __name__ == "__main__":
    main()
