"""Train a deep S4 model on sequential MNIST: ``python -m s4lite.train --help``.

The model (:mod:`s4lite.model`), its loss (cross-entropy of the class after the last pixel) and the
augmentations are here; the loop, the checkpoints and the run records are :func:`s4lite.engine.fit`'s.
Images, labels and the per-epoch order live on the device; each step gathers its batch by index.

Outputs in ``--out``, besides the engine's ``config.json``, ``metrics.jsonl`` and
``checkpoint.safetensors``:

* ``metrics.csv`` – the metrics rows as a table;
* ``ssm_init.npz`` / ``kernels.npz`` – the kernels (L = 784), Δ and Λ of every layer before and
  after training;
* ``summary.json`` – final/best accuracy, time to 99%, throughput.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.ndimage
import numpy as np
import optax

from . import engine
from .data import MNIST_MEAN, MNIST_STD, SEQ_LEN, load_task, permutation
from .engine import TrainConfig, Task, make_optimizer, param_labels, run_info, summarize  # noqa: F401
from .layer import s4_kernel
from .model import Backend, classify, init_model

Array = jax.Array
PROG = "python -m s4lite.train"
BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel, standardized
git_commit = engine.git_commit


def build_parser():
    """The command-line options: one per field of :class:`s4lite.engine.TrainConfig`."""
    return engine.build_parser(TrainConfig, PROG, __doc__.split("\n")[0])


# ----------------------------------------------------------------------------------------------
# Data and augmentation
# ----------------------------------------------------------------------------------------------


def load_arrays(cfg: Any) -> dict[str, Any]:
    """Images ``(n, 28, 28)`` standardized float32 and int32 labels (NumPy), plus their source."""
    task = load_task("smnist", cfg.data_dir, cfg.sample, cfg.limit_train, cfg.limit_test)
    out = {k: np.asarray(task[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    out["x_train"] = out["x_train"].reshape(-1, 28, 28)
    out["x_test"] = out["x_test"].reshape(-1, 28, 28)
    out["source"] = task["source"]
    return out


def shift_images(key: Array, images: Array, max_shift: int = 2) -> Array:
    """Random translations by up to ``max_shift`` pixels (background-padded), ``(B, 28, 28)``."""
    pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift))
    padded = jnp.pad(images, pad, constant_values=BACKGROUND)
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * max_shift + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1]), (28, 28))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def affine_images(
    key: Array,
    images: Array,
    max_degrees: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
    max_shift: float = 2.0,
) -> Array:
    r"""Random rotation, scaling and translation of each image (bilinear sampling), ``(B, 28, 28)``.

    Output pixel p samples the input at :math:`c + R(\theta)(p - c - t) / s` (c the image centre,
    R a rotation by θ, s the scale, t the shift in pixels).
    """
    n, h, w = images.shape
    k_rot, k_scale, k_shift = jax.random.split(key, 3)
    theta = jnp.deg2rad(jax.random.uniform(k_rot, (n,), minval=-max_degrees, maxval=max_degrees))
    s = jax.random.uniform(k_scale, (n,), minval=scale[0], maxval=scale[1])
    t = jax.random.uniform(k_shift, (n, 2), minval=-max_shift, maxval=max_shift)
    axes = (jnp.arange(h, dtype=images.dtype), jnp.arange(w, dtype=images.dtype))
    rows, cols = jnp.meshgrid(*axes, indexing="ij")
    cr, cc = (h - 1) / 2, (w - 1) / 2

    def warp(img, th, sc, tr):
        dr, dc = rows - cr - tr[0], cols - cc - tr[1]
        cos, sin = jnp.cos(th), jnp.sin(th)
        src = [cr + (cos * dr - sin * dc) / sc, cc + (sin * dr + cos * dc) / sc]
        return jax.scipy.ndimage.map_coordinates(img, src, order=1, mode="constant", cval=BACKGROUND)

    return jax.vmap(warp)(images, theta, s, t)


AUGMENTATIONS = {"none": lambda key, images: images, "shift": shift_images, "affine": affine_images}


def to_sequence(images: Array, perm: Array | None) -> Array:
    """``(B, 28, 28)`` → ``(B, 784, 1)``: read pixel by pixel (row-major), optionally permuted."""
    seq = images.reshape(images.shape[0], -1)
    if perm is not None:
        seq = seq[:, perm]
    return seq[..., None]


# ----------------------------------------------------------------------------------------------
# The model and its loss, as a task for the engine
# ----------------------------------------------------------------------------------------------


def cross_entropy(logits: Array, labels: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def smnist_task(cfg: TrainConfig, arrays: dict[str, Any], backend: Backend) -> Task:
    """Sequential (or permuted) MNIST classification with the deep S4 model of ``cfg``."""
    perm = jnp.asarray(permutation(0)) if cfg.task == "psmnist" else None  # one task for every seed
    augment = AUGMENTATIONS[cfg.augment]
    init_layer = engine.init_layer_fn(cfg)

    def init(key):
        return init_model(key, 1, 10, cfg.d_model, cfg.n_layers, cfg.N, init_layer=init_layer)

    def loss(params, batch, key):
        k_aug, k_drop = jax.random.split(key)
        x = to_sequence(augment(k_aug, batch["x"]), perm)
        logits = classify(params, x, k_drop, cfg.dropout, backend)
        correct = jnp.sum(jnp.argmax(logits, -1) == batch["y"])
        return cross_entropy(logits, batch["y"]), {"acc": correct}

    def evaluate(params, batch):
        logits = classify(params, to_sequence(batch["x"], perm), backend=backend)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        return {"loss": ce, "acc": (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)}

    def split(name):
        return {"x": jnp.asarray(arrays[f"x_{name}"]), "y": jnp.asarray(arrays[f"y_{name}"], jnp.int32)}

    return Task(cfg.task, init, loss, evaluate, split("train"), split("test"), source=arrays["source"])


def ssm_snapshot(params: Any, L: int = SEQ_LEN, kernel: Any = s4_kernel) -> dict[str, np.ndarray]:
    """Kernels ``(layers, H, L)``, Δ ``(layers, H)`` and (S4) Λ ``(layers, H, N/2)`` of every layer."""
    kernel = _jitted(kernel)
    layers = [p["s4"] for p in params["layers"]]
    snap = {
        "kernels": np.stack([np.asarray(kernel(p, L)) for p in layers]),
        "step": np.stack([np.exp(np.asarray(p["log_step"])) for p in layers]),
    }
    if all("log_neg_re" in p and "im" in p for p in layers):  # S4 and S4D: Λ = −e^{a} + i b
        snap["Lambda"] = np.stack(
            [-np.exp(np.asarray(p["log_neg_re"])) + 1j * np.asarray(p["im"]) for p in layers]
        )
    return snap


_JITTED: dict = {}


def _jitted(kernel: Any) -> Any:
    """One compiled program per kernel function, not op-by-op dispatch."""
    if kernel not in _JITTED:
        _JITTED[kernel] = jax.jit(kernel, static_argnums=1)
    return _JITTED[kernel]


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Run the command line ``argv`` (or the config ``cfg``); returns the summary."""
    import sys

    if cfg is None:
        cfg = engine.parse(TrainConfig, PROG, __doc__.split("\n")[0], argv)
        command = PROG + " " + " ".join(sys.argv[1:] if argv is None else argv)
    else:
        cfg = engine.validate(cfg)
        command = engine.command_line(PROG, cfg)
    out = engine.prepare_out(cfg, needs=("ssm_init.npz",))
    info = run_info()
    print(f"device: {info['device']} ({info['device_kind']}), JAX {info['jax_version']}", flush=True)
    backend = engine.resolve(cfg)
    arrays = engine.load_data(lambda: load_arrays(cfg))
    print(f"data: {arrays['source']}: {len(arrays['y_train'])} train / {len(arrays['y_test'])} test", flush=True)

    def record_init(out: Path, params: Any) -> None:
        np.savez(out / "ssm_init.npz", **ssm_snapshot(params, SEQ_LEN, backend.kernel))

    name = getattr(backend.kernel, "__name__", type(backend.kernel).__name__)
    extra = {"kernel_resolved": "pallas" if name.endswith("fused") else "xla"}
    task = smnist_task(cfg, arrays, backend)
    result = engine.fit(cfg, task, command=command, prog=PROG, extra=extra, needs=("ssm_init.npz",),
                        on_start=record_init)  # fmt: skip
    history = result.history
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    init = dict(np.load(out / "ssm_init.npz"))
    final = ssm_snapshot(result.eval_params, SEQ_LEN, backend.kernel)
    np.savez(out / "kernels.npz", **{f"{k}_init": v for k, v in init.items()},
             **{f"{k}_final": v for k, v in final.items()})  # fmt: skip
    summary = summarize(history, result.run)
    engine.write_json(out / "summary.json", summary)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
