"""Train a deep S4 model on sequential MNIST: ``python -m s4lite.train --help``.

Everything the run needs lives on the device as arrays (images, labels, a random permutation per
epoch); each step gathers its batch by index, so no Python transform touches single images.

Outputs in ``--out``:

* ``config.json`` – every option, the exact command, git commit, device, JAX version, date;
* ``metrics.jsonl`` / ``metrics.csv`` – one line per epoch: train/test loss and accuracy, samples/s,
  cumulative training time and wall time;
* ``checkpoint.safetensors`` + ``checkpoint.json`` – parameters and optimizer state after the last
  finished epoch (safetensors: no pickle); ``--resume`` continues from it exactly;
* ``kernels.npz`` – the learned kernels of every layer (L = sequence length) before and after training,
  with Δ and Λ of every layer before and after;
* ``summary.json`` – final/best accuracy, time to 99%, throughput.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import jax.scipy.ndimage
import jax.numpy as jnp
import numpy as np
import optax

from .layer import SSM_KEYS, resolve_kernel, s4_kernel, ssm_parts
from .model import classify, count_params, init_model

Array = jax.Array

MEAN, STD = 0.1307, 0.3081


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m s4lite.train", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=["smnist", "psmnist"], default="smnist", help="sequential or permuted MNIST")
    p.add_argument("--d-model", type=int, default=128, help="feature channels H")
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--N", type=int, default=64, help="state size per SSM (even)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (non-SSM parameters)")
    p.add_argument("--ssm-lr", type=float, default=1e-3, help="peak learning rate of Λ, P, B, log Δ (no weight decay)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--ema", type=float, default=0.0, help="evaluate an exponential moving average of the weights with this decay (0: off)")
    p.add_argument("--warmup-frac", type=float, default=0.05, help="share of steps in linear warm-up")
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument(
        "--augment",
        choices=["none", "shift", "affine"],
        default="none",
        help="shift: random ±2 px translations; affine: also ±10° rotations and 0.9-1.1 scaling",
    )
    p.add_argument(
        "--conv",
        choices=["fft", "toeplitz", "toeplitz_bf16"],
        default="fft",
        help="how the S4 layers convolve: fft and toeplitz agree to float32 roundoff; toeplitz_bf16 multiplies in bfloat16",
    )
    p.add_argument(
        "--kernel",
        choices=["auto", "xla", "pallas"],
        default="auto",
        help="how the S4 kernels are computed: pallas = the fused Triton Cauchy kernel (auto: on a GPU), xla = materialized Cauchy matrices",
    )
    p.add_argument("--prng", choices=["threefry2x32", "rbg"], default="threefry2x32", help="random-bit generator for dropout/augmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="directory with the MNIST IDX .gz files (else S4LITE_DATA / download)")
    p.add_argument("--sample", action="store_true", help="use the small sample shipped with s4lite (tests, CPU demos)")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first n training digits")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first n test digits")
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--out", default="runs/smnist", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--time-budget", type=float, default=None, help="stop after the epoch that exceeds this many training seconds")
    return p


# ----------------------------------------------------------------------------------------------
# Data on the device
# ----------------------------------------------------------------------------------------------


def load_arrays(args: argparse.Namespace) -> dict[str, Any]:
    """Images ``(n, 28, 28)`` normalized float32 and int32 labels, as NumPy arrays, plus their source."""
    from . import data

    task = data.load_task(
        "smnist",
        data_dir=args.data_dir,
        sample=args.sample,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
    )
    out = {k: np.asarray(task[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    out["x_train"] = out["x_train"].reshape(-1, 28, 28)
    out["x_test"] = out["x_test"].reshape(-1, 28, 28)
    out["source"] = task.get("source", "unknown")
    return out


def shift_images(key: Array, images: Array, max_shift: int = 2) -> Array:
    """Random translations by up to ``max_shift`` pixels (background-padded), ``(B, 28, 28)``."""
    background = (0.0 - MEAN) / STD
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), constant_values=background)
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * max_shift + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1]), (28, 28))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def affine_images(
    key: Array, images: Array, max_degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), max_shift: float = 2.0
) -> Array:
    """Random rotation, scaling and translation of each image (bilinear sampling), ``(B, 28, 28)``.

    Output pixel p samples the input at :math:`c + R(\theta)(p - c - t) / s` (c the image centre,
    R a rotation by θ, s the scale, t the shift in pixels).
    """
    background = (0.0 - MEAN) / STD
    n, h, w = images.shape
    k_rot, k_scale, k_shift = jax.random.split(key, 3)
    theta = jnp.deg2rad(jax.random.uniform(k_rot, (n,), minval=-max_degrees, maxval=max_degrees))
    s = jax.random.uniform(k_scale, (n,), minval=scale[0], maxval=scale[1])
    t = jax.random.uniform(k_shift, (n, 2), minval=-max_shift, maxval=max_shift)
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=images.dtype), jnp.arange(w, dtype=images.dtype), indexing="ij")
    cr, cc = (h - 1) / 2, (w - 1) / 2

    def warp(img, th, sc, tr):
        dr, dc = rows - cr - tr[0], cols - cc - tr[1]
        cos, sin = jnp.cos(th), jnp.sin(th)
        src_r = cr + (cos * dr - sin * dc) / sc
        src_c = cc + (sin * dr + cos * dc) / sc
        return jax.scipy.ndimage.map_coordinates(img, [src_r, src_c], order=1, mode="constant", cval=background)

    return jax.vmap(warp)(images, theta, s, t)


def to_sequence(images: Array, perm: Array | None) -> Array:
    """``(B, 28, 28)`` → ``(B, 784, 1)``: read pixel by pixel (row-major), optionally permuted."""
    seq = images.reshape(images.shape[0], -1)
    if perm is not None:
        seq = seq[:, perm]
    return seq[..., None]


# ----------------------------------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------------------------------


def param_labels(params: Any) -> Any:
    """``"ssm"`` for Λ, P, B, log Δ of every S4 layer (smaller lr, no weight decay), ``"other"`` elsewhere."""

    def label(path, _):
        keys = [getattr(k, "key", None) for k in path]
        return "ssm" if ("s4" in keys and keys[-1] in SSM_KEYS) else "other"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(args: argparse.Namespace, total_steps: int, params: Any) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay; SSM parameters get ``ssm_lr`` and no weight decay."""
    warmup = max(1, int(args.warmup_frac * total_steps))

    def schedule(peak: float) -> optax.Schedule:
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(total_steps, warmup + 1), 0.0)

    return optax.multi_transform(
        {
            "ssm": optax.adamw(schedule(args.ssm_lr), weight_decay=0.0),
            "other": optax.adamw(schedule(args.lr), weight_decay=args.weight_decay),
        },
        param_labels(params),
    )


# ----------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------


def cross_entropy(logits: Array, labels: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_steps(args: argparse.Namespace, opt: optax.GradientTransformation, perm: Array | None):
    """Jitted ``train_step`` and ``eval_batch`` closing over the options."""
    rate = float(args.dropout)
    augment = args.augment

    def loss_fn(params, images, labels, key):
        k_aug, k_drop = jax.random.split(key)
        if augment == "shift":
            images = shift_images(k_aug, images)
        elif augment == "affine":
            images = affine_images(k_aug, images)
        logits = classify(params, to_sequence(images, perm), k_drop, rate, args.conv, args.kernel)
        return cross_entropy(logits, labels), logits

    decay = float(args.ema)

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x_all, y_all, idx, key):
        images, labels = x_all[idx], y_all[idx]
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, images, labels, key)
        inner, ema = opt_state if decay > 0 else (opt_state, None)
        updates, inner = opt.update(grads, inner, params)
        params = optax.apply_updates(params, updates)
        if decay > 0:  # Polyak averaging: ema ← decay·ema + (1 − decay)·params
            ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
            opt_state = (inner, ema)
        else:
            opt_state = inner
        correct = jnp.sum(jnp.argmax(logits, -1) == labels)
        return params, opt_state, loss, correct

    @jax.jit
    def eval_batch(params, images, labels, mask):
        logits = classify(params, to_sequence(images, perm), conv=args.conv, kernel=args.kernel)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(losses * mask), jnp.sum((jnp.argmax(logits, -1) == labels) * mask)

    return train_step, eval_batch


def init_state(args: argparse.Namespace, opt: optax.GradientTransformation, params: Any) -> Any:
    """Optimizer state; with ``--ema`` it also carries the moving average of the weights (saved in checkpoints)."""
    state = opt.init(params)
    return (state, jax.tree.map(jnp.array, params)) if args.ema > 0 else state


def weights_to_evaluate(args: argparse.Namespace, params: Any, opt_state: Any) -> Any:
    """The weights the run is evaluated (and reported) with: the moving average under ``--ema``."""
    return opt_state[1] if args.ema > 0 else params


def evaluate(eval_batch: Callable, params: Any, x: Array, y: Array, batch: int) -> tuple[float, float]:
    """Mean loss and accuracy over all of ``x`` (the last batch padded and masked)."""
    n = x.shape[0]
    batch = min(batch, n)
    total_loss, total_correct = 0.0, 0
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch) % n
        mask = (np.arange(start, start + batch) < n).astype(np.float32)
        loss, correct = eval_batch(params, x[idx], y[idx], jnp.asarray(mask))
        total_loss += float(loss)
        total_correct += int(correct)
    return total_loss / n, total_correct / n


# ----------------------------------------------------------------------------------------------
# Checkpoints (safetensors: arrays only, no pickle) and run records
# ----------------------------------------------------------------------------------------------


def _flat(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves(tree)
    return {f"{prefix}/{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}


def save_checkpoint(out: Path, params: Any, opt_state: Any, meta: dict[str, Any]) -> None:
    """Write parameters and optimizer state atomically (tmp file + rename)."""
    from safetensors.numpy import save_file

    tensors = {**_flat(params, "params"), **_flat(opt_state, "opt")}
    tmp = out / "checkpoint.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, out / "checkpoint.safetensors")
    (out / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(out / "checkpoint.json.tmp", out / "checkpoint.json")


def load_checkpoint(out: Path, params: Any, opt_state: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Restore into the structures of freshly initialized ``params`` and ``opt_state``."""
    from safetensors.numpy import load_file

    tensors = load_file(str(out / "checkpoint.safetensors"))
    meta = json.loads((out / "checkpoint.json").read_text())

    def restore(tree: Any, prefix: str) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        new = []
        for i, old in enumerate(leaves):
            arr = tensors[f"{prefix}/{i:04d}"]
            if arr.shape != np.shape(old):
                raise ValueError(f"checkpoint: {prefix}/{i:04d} has shape {arr.shape}, expected {np.shape(old)}")
            new.append(jnp.asarray(arr, dtype=jnp.asarray(old).dtype))
        return jax.tree_util.tree_unflatten(treedef, new)

    return restore(params, "params"), restore(opt_state, "opt"), meta


def git_commit() -> str:
    """The commit of the code that runs: ``$S4LITE_COMMIT`` if set, else ``git rev-parse HEAD``.

    A ``-dirty`` suffix says tracked files differ from that commit. (A copy of a working tree on a
    remote machine can carry an older ``.git`` than the files it runs: there the caller names the
    commit in ``S4LITE_COMMIT``.)
    """
    if os.environ.get("S4LITE_COMMIT"):
        return os.environ["S4LITE_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        run = partial(subprocess.run, cwd=here, capture_output=True, text=True, check=True, timeout=10)
        head = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - no git, not a repo: record that
        return "unknown"


def run_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    precision_env = ("JAX_DEFAULT_MATMUL_PRECISION", "XLA_FLAGS", "NVIDIA_TF32_OVERRIDE", "JAX_ENABLE_X64")
    return {
        "device": str(dev),
        "device_kind": getattr(dev, "device_kind", dev.platform),
        "platform": dev.platform,
        "jax_version": jax.__version__,
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "precision_env": {k: os.environ.get(k) for k in precision_env},
    }


_jit_kernel = jax.jit(s4_kernel, static_argnums=(1, 2))  # one compiled program, not op-by-op dispatch


def ssm_snapshot(params: Any, L: int) -> dict[str, np.ndarray]:
    """Kernels ``(layers, H, L)``, Δ ``(layers, H)`` and Λ ``(layers, H, N/2)`` of every S4 layer."""
    kernels, steps, lambdas = [], [], []
    for p in params["layers"]:
        Lambda, _, _, _, step = ssm_parts(p["s4"])
        kernels.append(np.asarray(_jit_kernel(p["s4"], L)))
        steps.append(np.asarray(step))
        lambdas.append(np.asarray(Lambda))
    return {"kernels": np.stack(kernels), "step": np.stack(steps), "Lambda": np.stack(lambdas)}


# ----------------------------------------------------------------------------------------------
# Main loop
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.N % 2 or args.N < 2:
        raise SystemExit(f"--N: expected an even state size >= 2, got {args.N}")
    if not 0.0 <= args.dropout < 1.0:
        raise SystemExit(f"--dropout: expected a rate in [0, 1), got {args.dropout}")
    if not 0.0 <= args.ema < 1.0:
        raise SystemExit(f"--ema: expected a decay in [0, 1), got {args.ema}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = run_info()
    print(f"device: {info['device']} ({info['device_kind']}), JAX {info['jax_version']}", flush=True)

    try:
        arrays = load_arrays(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise SystemExit(f"data: {err}") from err
    n_train = arrays["x_train"].shape[0]
    steps_per_epoch = n_train // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"--batch-size: {args.batch_size} is larger than the {n_train} training digits")
    total_steps = steps_per_epoch * args.epochs
    print(f"data: {arrays['source']}: {n_train} train / {arrays['x_test'].shape[0]} test digits", flush=True)

    k_init = jax.random.PRNGKey(args.seed)
    k_train = jax.random.key(args.seed + 1, impl=args.prng)
    params = init_model(k_init, 1, 10, args.d_model, args.n_layers, args.N)
    opt = make_optimizer(args, total_steps, params)
    opt_state = init_state(args, opt, params)
    perm = None
    if args.task == "psmnist":
        from .data import permutation

        perm = jnp.asarray(permutation(0))  # one fixed task for every --seed

    x_train, y_train = jnp.asarray(arrays["x_train"]), jnp.asarray(arrays["y_train"], jnp.int32)
    x_test, y_test = jnp.asarray(arrays["x_test"]), jnp.asarray(arrays["y_test"], jnp.int32)
    train_step, eval_batch = make_steps(args, opt, perm)

    config = {
        **{k.replace("_", "-"): v for k, v in vars(args).items()},
        "command": "python -m s4lite.train " + " ".join(sys.argv[1:] if argv is None else argv),
        "n_params": count_params(params),
        "data_source": arrays["source"],
        "n_train": n_train,
        "n_test": int(x_test.shape[0]),
        "steps_per_epoch": steps_per_epoch,
        "kernel_resolved": resolve_kernel(args.kernel),
        **info,
    }
    start_epoch, train_time, wall_offset, history = 0, 0.0, 0.0, []
    if args.resume and (out / "checkpoint.safetensors").exists():
        params, opt_state, meta = load_checkpoint(out, params, opt_state)
        start_epoch, train_time, wall_offset = meta["epoch"], meta["train_time"], meta["wall_time"]
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        history = history[:start_epoch]  # rows written after the checkpoint belong to an epoch that is redone
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        print(f"resumed from epoch {start_epoch}", flush=True)
    else:
        (out / "metrics.jsonl").write_text("")
        np.savez(out / "ssm_init.npz", **ssm_snapshot(params, 784))
    (out / "config.json").write_text(json.dumps(config, indent=1))

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    t_wall0 = time.perf_counter() - wall_offset
    for epoch in range(start_epoch, args.epochs):
        k_epoch = jax.random.fold_in(k_train, epoch)
        k_perm, k_steps = jax.random.split(k_epoch)
        order = jax.random.permutation(k_perm, n_train)
        bar = None
        if tqdm is not None and not args.no_progress:
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        t0 = time.perf_counter()
        loss_sum, correct_sum = jnp.zeros(()), jnp.zeros((), jnp.int32)
        for s in range(steps_per_epoch):
            idx = jax.lax.dynamic_slice(order, (s * args.batch_size,), (args.batch_size,))
            params, opt_state, loss, correct = train_step(params, opt_state, x_train, y_train, idx, jax.random.fold_in(k_steps, s))
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
            if bar is not None:
                bar.update(1)
        train_loss = float(loss_sum) / steps_per_epoch  # blocks until the epoch is done
        epoch_time = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        if not math.isfinite(train_loss):
            raise SystemExit(
                f"training diverged in epoch {epoch + 1}: mean train loss is {train_loss}. "
                "Nothing was saved for this epoch; try a smaller --lr/--ssm-lr or resume from the last checkpoint."
            )
        train_time += epoch_time
        test_loss, test_acc = evaluate(eval_batch, weights_to_evaluate(args, params, opt_state), x_test, y_test, args.eval_batch)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": int(correct_sum) / (steps_per_epoch * args.batch_size),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "epoch_time": epoch_time,
            "samples_per_s": steps_per_epoch * args.batch_size / epoch_time,
            "train_time": train_time,
            "wall_time": time.perf_counter() - t_wall0,
        }
        history.append(row)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        save_checkpoint(out, params, opt_state, {"epoch": epoch + 1, "train_time": train_time, "wall_time": row["wall_time"]})
        print(
            f"epoch {epoch + 1:3d}  train loss {train_loss:.4f} acc {row['train_acc']:.4f}  "
            f"test loss {test_loss:.4f} acc {test_acc:.4f}  {row['samples_per_s']:,.0f} samples/s",
            flush=True,
        )
        if args.time_budget is not None and train_time >= args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s reached", flush=True)
            break

    with open(out / "metrics.csv", "w", newline="") as f:
        if history:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
    final = ssm_snapshot(weights_to_evaluate(args, params, opt_state), 784)
    init = dict(np.load(out / "ssm_init.npz"))
    np.savez(out / "kernels.npz", **{f"{k}_init": v for k, v in init.items()}, **{f"{k}_final": v for k, v in final.items()})
    summary = summarize(history, config)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), flush=True)
    return summary


def summarize(history: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Final and best test accuracy, time to 99% (training and wall seconds), median throughput."""
    if not history:
        return {"epochs": 0}
    reach = next((r for r in history if r["test_acc"] >= 0.99), None)
    rates = sorted(r["samples_per_s"] for r in history[1:] or history)  # epoch 1 includes compilation
    return {
        "epochs": len(history),
        "final_test_acc": history[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in history),
        "best_epoch": max(history, key=lambda r: r["test_acc"])["epoch"],
        "time_to_99_train_s": None if reach is None else reach["train_time"],
        "time_to_99_wall_s": None if reach is None else reach["wall_time"],
        "epoch_to_99": None if reach is None else reach["epoch"],
        "median_samples_per_s": rates[len(rates) // 2],
        "train_time_s": history[-1]["train_time"],
        "wall_time_s": history[-1]["wall_time"],
        "n_params": config["n_params"],
        "device": config["device"],
    }


if __name__ == "__main__":
    main()
