"""``python -m s4lite.resolution``: read a trained sMNIST model at another resolution, zero-shot.

An S4 layer is a discretized continuous system: its kernel depends on the step Δ. Reading the same
digit at half the resolution (14×14, L = 196) means each pixel of the sequence covers the time of
four pixels of the 28×28 sequence, so the matching step is 4Δ; at twice the resolution (56×56,
L = 3136) it is Δ/4. This tool evaluates a trained run's weights on the resized test digits with Δ
rescaled and without, and writes one JSON file.

    python -m s4lite.resolution --run runs/smnist --data-dir data/mnist --out resolution.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import engine
from .engine import TrainConfig
from .model import classify

PROG = "python -m s4lite.resolution"
SIZES = (14, 28, 56)


def resize_images(images: Any, size: int) -> np.ndarray:
    """``(B, 28, 28)`` → ``(B, size, size)``: block averages to shrink, pixel repeats to grow.

    ``size`` must divide 28 or be a multiple of it, so every new pixel covers whole old pixels.
    """
    images = np.asarray(images)
    n, side = images.shape[0], images.shape[1]
    if size <= side:
        f = side // size
        return images.reshape(n, size, f, size, f).mean(axis=(2, 4))
    f = size // side
    return images.repeat(f, axis=1).repeat(f, axis=2)


def rescale_steps(params: dict, factor: float) -> dict:
    """Multiply the step Δ of every sequence layer by ``factor`` (Δ is stored as log Δ)."""
    layers = [
        {**p, "s4": {**p["s4"], "log_step": p["s4"]["log_step"] + np.log(factor)}}
        for p in params["layers"]
    ]
    return {**params, "layers": layers}


def accuracy(params: dict, images: np.ndarray, labels: np.ndarray, backend, batch: int) -> float:
    """Test accuracy of ``params`` on ``images (n, s, s)`` read pixel by pixel."""
    fn = jax.jit(lambda p, x: jnp.argmax(classify(p, x, backend=backend), -1))
    right = 0
    for i in range(0, len(labels), batch):
        x = jnp.asarray(images[i : i + batch].reshape(len(images[i : i + batch]), -1, 1))
        right += int(jnp.sum(fn(params, x) == jnp.asarray(labels[i : i + batch])))
    return right / len(labels)


def load_run(run: Path) -> tuple[TrainConfig, dict]:
    """The config and the evaluated weights (the weight average if the run kept one) of a run."""
    from .train import load_arrays, smnist_task  # noqa: F401 - the run's own model definition

    recorded = engine.read_run_config(run)
    fields = {f.name for f in engine.dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in recorded.items() if k in fields})
    tensors, _ = engine.read_checkpoint(run / engine.CHECKPOINT)
    from .model import init_model

    init_layer = engine.init_layer_fn(cfg)
    template = jax.eval_shape(
        lambda k: init_model(k, 1, 10, cfg.d_model, cfg.n_layers, cfg.N, init_layer=init_layer),
        jax.random.PRNGKey(0),
    )
    part = "ema" if any(k.startswith("ema/") for k in tensors) else "params"
    return cfg, engine.unflatten(template, part, tensors, run)


def _final_accuracy(run: Path) -> float | None:
    """The run's own final test accuracy (its ``summary.json``), for comparison at 28×28."""
    summary = run / "summary.json"
    return json.loads(summary.read_text()).get("final_test_acc") if summary.is_file() else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a run directory of python -m s4lite.train")
    ap.add_argument("--data-dir", default=None, help="directory with the MNIST IDX files")
    ap.add_argument("--sample", action="store_true", help="use the small shipped sample (tests)")
    ap.add_argument("--eval-batch", type=int, default=500, help="test digits per batch (default 500)")
    ap.add_argument("--out", required=True, help="JSON file to write (refused if it exists)")
    a = ap.parse_args(argv)
    run, out = Path(a.run), Path(a.out)
    if a.eval_batch < 1:
        engine.fail(f"--eval-batch: expected an integer >= 1, got {a.eval_batch}")
    if out.exists():
        engine.fail(f"--out: {out} already exists; choose another file (nothing was overwritten)")
    if not (run / "config.json").is_file():
        engine.fail(f"--run: {run} holds no config.json; expected a run of python -m s4lite.train")
    try:
        cfg, params = load_run(run)
    except (ValueError, TypeError) as err:
        engine.fail(f"--run: {err}")
    from .train import load_arrays

    cfg_data = TrainConfig(**{**engine.dataclasses.asdict(cfg), "data_dir": a.data_dir,
                              "sample": a.sample})  # fmt: skip
    arrays = engine.load_data(lambda: load_arrays(cfg_data))
    backend = engine.resolve_backend(cfg.ssm, "fft", cfg.kernel, cfg.discretization)
    rows = []
    for size in SIZES:
        images = resize_images(arrays["x_test"], size)
        for rescaled in (True, False) if size != 28 else (True,):
            scale = (28 / size) ** 2 if rescaled else 1.0
            acc = accuracy(rescale_steps(params, scale), images, arrays["y_test"], backend,
                           a.eval_batch)  # fmt: skip
            rows.append({"size": size, "L": size * size, "step_scale": scale,
                         "rescaled": rescaled, "test_accuracy": acc})  # fmt: skip
            print(f"{size}x{size} (L={size * size}) step x{scale:g}: {acc:.4f}", flush=True)
    info = engine.run_info()
    result = {"command": PROG + " " + " ".join(sys.argv[1:] if argv is None else argv),
              "commit": info["commit"], "device": info["device_kind"], "date": info["date"],
              "base_run": str(run), "base_final_test_accuracy": _final_accuracy(run),
              "runs": rows}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
