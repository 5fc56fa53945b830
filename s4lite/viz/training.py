r"""Helpers for Part II (chapters 8–10): the S4 layer, training on sequential MNIST, what S4 learned.

Small functions that return numbers, tables or a matplotlib Figure; nothing here trains or
re-implements the model (that is :mod:`s4lite.layer`, :mod:`s4lite.model`, :mod:`s4lite.train`).

* **Runs** (directories written by ``python -m s4lite.train``): :func:`find_run`, :func:`load_run`
  (config, summary, per-epoch metrics as columns, kernel snapshots), :func:`run_facts` (the headline
  numbers recomputed from the metrics), :func:`first_reaching`, :func:`accuracy_within`,
  :func:`expected_seconds`, :func:`plot_curves`; two runs side by side: :func:`run_settings`,
  :func:`compare_runs`, :func:`plot_test_error_runs`.
* **Parameters and optimizer**: :func:`param_table`, :func:`label_counts`,
  :func:`measured_learning_rates` (the schedule read off the real optimizer), :func:`plot_learning_rates`.
* **Data**: :func:`plot_digit_sequence`, :func:`plot_augmented`.
* **Kernels and SSM parameters** (kernels ``(layers, H, L)``, Δ ``(layers, H)``, Λ ``(layers, H, N/2)``):
  :func:`plot_kernels`, :func:`kernel_image`, :func:`kernel_grid`, :func:`recent_energy_fraction`,
  :func:`energy_profile`, :func:`plot_energy_profiles`, :func:`energy_extent`, :func:`same_column_ratio`,
  :func:`plot_steps`, :func:`plot_eigenvalues`, :func:`plot_decay_rates`, :func:`ssm_change_stats`.
* **Tables**: :func:`markdown_table`, :func:`step_variant_rows`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib.figure import Figure

from ._io import find_artifact
from ._io import read_json_object as _read_json

#: Columns every line of ``metrics.jsonl`` has (see :func:`s4lite.train.main`).
METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "epoch_time",
    "samples_per_s",
    "train_time",
    "wall_time",
)
#: Arrays of ``kernels.npz``: kernels (layers, H, L), step (layers, H), Lambda (layers, H, N/2).
KERNEL_KEYS = ("kernels", "step", "Lambda")
CLOCKS = ("train_time", "wall_time")


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def find_run(relpath: str = "artifacts/smnist", start: str | Path | None = None) -> Path | None:
    """The run directory ``<dir>/relpath`` (holding ``summary.json``) for ``dir`` = ``start`` or a parent; else None."""
    found = find_artifact(f"{relpath.rstrip('/')}/summary.json", start)
    return None if found is None else found.parent


def metrics_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-epoch records → one float64 array per column of :data:`METRIC_KEYS` (``epoch`` as int)."""
    if not rows:
        raise ValueError("rows: expected at least one epoch of metrics, got none")
    for i, row in enumerate(rows):
        missing = [k for k in METRIC_KEYS if k not in row]
        if missing:
            raise ValueError(f"rows[{i}]: missing keys {missing}")
    cols = {k: np.array([float(r[k]) for r in rows]) for k in METRIC_KEYS}
    cols["epoch"] = cols["epoch"].astype(int)
    if np.any(np.diff(cols["epoch"]) <= 0):
        raise ValueError(f"rows: expected increasing epochs, got {cols['epoch'].tolist()}")
    return cols


def load_run(path: str | Path) -> dict[str, Any]:
    """Read a training run directory written by ``python -m s4lite.train``.

    Returns ``{"path", "config", "summary", "metrics", "kernels"}``: the two JSON files as dicts,
    ``metrics`` as columns (:func:`metrics_columns`) of ``metrics.jsonl``, and ``kernels`` the arrays
    of ``kernels.npz`` (``kernels_init``, ``kernels_final``, …) or None when the file is absent.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path: expected a run directory, got {str(path)!r}")
    for name in ("config.json", "summary.json", "metrics.jsonl"):
        if not (path / name).is_file():
            raise ValueError(f"path: {str(path)!r} has no {name} (is it an s4lite.train output directory?)")
    lines = (path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    try:
        rows = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {str(path / 'metrics.jsonl')!r} has a line that is not JSON ({err})") from err
    kernels = None
    if (path / "kernels.npz").is_file():
        with np.load(path / "kernels.npz", allow_pickle=False) as f:
            kernels = {k: f[k] for k in f.files}
        missing = [f"{k}_{w}" for k in KERNEL_KEYS for w in ("init", "final") if f"{k}_{w}" not in kernels]
        if missing:
            raise ValueError(f"path: kernels.npz lacks {missing}")
    return {
        "path": path,
        "config": _read_json(path / "config.json"),
        "summary": _read_json(path / "summary.json"),
        "metrics": metrics_columns(rows),
        "kernels": kernels,
    }


def _metrics(metrics: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"metrics: missing columns {missing}")
    return metrics


def first_reaching(metrics: Mapping[str, np.ndarray], threshold: float, key: str = "test_acc") -> int | None:
    """Index of the first epoch whose ``metrics[key] >= threshold``, or None if none does."""
    if key not in METRIC_KEYS:
        raise ValueError(f"key: expected one of {METRIC_KEYS}, got {key!r}")
    values = np.asarray(_metrics(metrics)[key])
    hits = np.flatnonzero(values >= threshold)
    return int(hits[0]) if hits.size else None


def accuracy_within(metrics: Mapping[str, np.ndarray], seconds: float, clock: str = "wall_time") -> tuple[int, float] | None:
    """``(epoch, test_acc)`` of the last epoch finished within ``seconds`` on ``clock``; None if none was.

    That is the accuracy a run stopped at the time limit would report (its final accuracy then).
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {CLOCKS}, got {clock!r}")
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"seconds: expected a number > 0, got {seconds!r}")
    m = _metrics(metrics)
    done = np.flatnonzero(np.asarray(m[clock]) <= seconds)
    if not done.size:
        return None
    i = int(done[-1])
    return int(m["epoch"][i]), float(m["test_acc"][i])


def run_facts(run: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of a run, recomputed from its per-epoch metrics.

    Keys: ``epochs``, ``final_test_acc``, ``best_test_acc``, ``best_epoch``, ``epoch_to_99``,
    ``time_to_99_train_s``, ``time_to_99_wall_s`` (None when 99 % was never reached),
    ``median_samples_per_s`` (over epochs 2…, since epoch 1 includes compilation; upper median),
    ``train_time_s``, ``wall_time_s``, ``first_epoch_s`` (compilation included),
    ``samples_seen`` (steps per epoch × batch size × epochs, from the config).
    """
    m = _metrics(run["metrics"])
    config = run["config"]
    acc = m["test_acc"]
    best = int(np.argmax(acc))  # first maximum, like summarize()
    reach = first_reaching(m, 0.99)
    rates = np.sort(m["samples_per_s"][1:] if len(acc) > 1 else m["samples_per_s"])
    return {
        "epochs": len(acc),
        "final_test_acc": float(acc[-1]),
        "best_test_acc": float(acc[best]),
        "best_epoch": int(m["epoch"][best]),
        "epoch_to_99": None if reach is None else int(m["epoch"][reach]),
        "time_to_99_train_s": None if reach is None else float(m["train_time"][reach]),
        "time_to_99_wall_s": None if reach is None else float(m["wall_time"][reach]),
        "median_samples_per_s": float(rates[len(rates) // 2]),
        "train_time_s": float(m["train_time"][-1]),
        "wall_time_s": float(m["wall_time"][-1]),
        "first_epoch_s": float(m["epoch_time"][0]),
        "samples_seen": int(config["steps_per_epoch"]) * int(config["batch-size"]) * len(acc),
    }


def expected_seconds(n_train: int, epochs: int, samples_per_s: float) -> float:
    """Training time of ``epochs`` passes over ``n_train`` examples at ``samples_per_s``: n_train·epochs / rate."""
    for name, v in (("n_train", n_train), ("epochs", epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    if not (np.isfinite(samples_per_s) and samples_per_s > 0):
        raise ValueError(f"samples_per_s: expected a number > 0, got {samples_per_s!r}")
    return float(n_train) * int(epochs) / float(samples_per_s)


X_LABELS = {"epoch": "epoch", "train_time": "training time (s)", "wall_time": "wall-clock time (s)"}


def _x_label(x: str) -> str:
    """Axis label of ``x`` (``"epoch"``, ``"train_time"`` or ``"wall_time"``); ValueError otherwise."""
    if x not in X_LABELS:
        raise ValueError(f"x: expected 'epoch', 'train_time' or 'wall_time', got {x!r}")
    return X_LABELS[x]


def _finish_error_axis(ax: Any, targets: Sequence[float], xlabel: str, ylabel: str) -> None:
    """Horizontal lines at the error rates 1 − target, axis labels, legend and grid."""
    for target, style in zip(targets, (":", "--", "-.")):
        ax.axhline(1 - target, color="k", ls=style, lw=0.8, label=f"{100 * target:.1f} % accuracy")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def plot_curves(metrics: Mapping[str, np.ndarray], x: str = "epoch", targets: Sequence[float] = (0.99, 0.992)) -> Figure:
    """Loss (left) and error rate 1 − accuracy (right, log scale) for train and test against ``x``.

    ``x`` is ``"epoch"``, ``"train_time"`` or ``"wall_time"`` (seconds). Dotted lines mark the
    error rates of the accuracy ``targets``.
    """
    label = _x_label(x)
    m = _metrics(metrics)
    t = m[x]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.semilogy(t, m["train_loss"], label="train (dropout, augmented)", lw=1)
    ax1.semilogy(t, m["test_loss"], label="test", lw=1.2)
    ax1.set_xlabel(label)
    ax1.set_ylabel("cross-entropy loss")
    ax1.legend(fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    with np.errstate(divide="ignore"):
        ax2.semilogy(t, np.maximum(1 - m["train_acc"], 1e-5), label="train", lw=1)
        ax2.semilogy(t, np.maximum(1 - m["test_acc"], 1e-5), label="test", lw=1.2)
    _finish_error_axis(ax2, targets, label, "error rate 1 − accuracy (log)")
    fig.tight_layout()
    return fig


#: What a run used for an option that its ``config.json`` does not record because the option did not
#: exist yet at its commit: before ``--kernel`` the kernel was always the XLA one, before ``--ema`` no
#: average was kept (the raw weights were evaluated).
ABSENT_OPTIONS: dict[str, Any] = {"kernel": "xla", "ema": 0.0}


def run_settings(config: Mapping[str, Any], absent: Mapping[str, Any] = ABSENT_OPTIONS) -> dict[str, Any]:
    """``conv``, ``kernel``, ``ema`` and ``epochs`` of a run, from its ``config.json``.

    ``kernel`` is the implementation that ran: ``kernel_resolved`` if recorded, else ``kernel``
    (``"auto"`` resolved by the recorded ``platform``: Pallas on a GPU, XLA elsewhere). Options the
    config lacks are taken from ``absent`` and listed under ``"from_absent"``.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a mapping (a run's config.json), got {type(config).__name__}")
    for key in ("conv", "epochs"):
        if key not in config:
            raise ValueError(f"config: missing {key!r} (is it an s4lite.train config.json?)")
    out: dict[str, Any] = {"conv": str(config["conv"]), "epochs": int(config["epochs"]), "from_absent": []}
    kernel = config.get("kernel_resolved", config.get("kernel"))
    if kernel == "auto":
        kernel = "pallas" if config.get("platform") == "gpu" else "xla"
    for key, value in (("kernel", kernel), ("ema", config.get("ema"))):
        if value is None:
            if key not in absent:
                raise ValueError(f"config: no {key!r} recorded and none given in absent")
            value = absent[key]
            out["from_absent"].append(key)
        out[key] = float(value) if key == "ema" else str(value)
    return out


def compare_runs(runs: Mapping[str, Mapping[str, Any]], absent: Mapping[str, Any] = ABSENT_OPTIONS) -> list[dict[str, Any]]:
    """One row per run (``{name: run}`` as :func:`load_run` returns them): :func:`run_settings` and :func:`run_facts`.

    Each row holds ``name``, the settings (``conv``, ``kernel``, ``ema``, ``epochs``, ``from_absent``)
    and the headline numbers of :func:`run_facts` (``final_test_acc``, ``time_to_99_train_s``,
    ``median_samples_per_s``, …), recomputed from the metrics.
    """
    if not runs:
        raise ValueError("runs: expected at least one run")
    rows = []
    for name, run in runs.items():
        settings = run_settings(run["config"], absent)
        facts = run_facts(run)
        if facts["epochs"] != settings["epochs"]:
            raise ValueError(f"runs[{name!r}]: config says {settings['epochs']} epochs, metrics hold {facts['epochs']}")
        rows.append({"name": str(name), **settings, **facts})
    return rows


def plot_test_error_runs(
    runs: Mapping[str, Mapping[str, np.ndarray]], x: str = "train_time", targets: Sequence[float] = (0.99, 0.992)
) -> Figure:
    """Test error rate 1 − accuracy (log y) of several runs against ``x``, one line per ``{label: metrics}``.

    ``x`` is ``"epoch"``, ``"train_time"`` or ``"wall_time"``. A dot marks each run's first epoch
    with test accuracy ≥ ``targets[0]``; dotted/dashed lines mark the error rates of the ``targets``.
    """
    if not runs:
        raise ValueError("runs: expected at least one run")
    label = _x_label(x)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, (name, metrics) in enumerate(runs.items()):
        m = _metrics(metrics)
        color = f"C{i}"
        ax.semilogy(m[x], np.maximum(1 - m["test_acc"], 1e-5), lw=1.1, color=color, label=str(name))
        if targets:
            hit = first_reaching(m, targets[0])
            if hit is not None:
                ax.plot(m[x][hit], 1 - m["test_acc"][hit], "o", color=color, ms=6, zorder=3)
    _finish_error_axis(ax, targets, label, "test error rate 1 − accuracy (log)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Parameters and optimizer
# --------------------------------------------------------------------------------------------------


def _path_name(path: Sequence[Any]) -> str:
    parts = []
    for k in path:
        if hasattr(k, "key"):
            parts.append(f".{k.key}")
        elif hasattr(k, "idx"):
            parts.append(f"[{k.idx}]")
        else:  # pragma: no cover - other pytree nodes
            parts.append(f".{k}")
    return "".join(parts).lstrip(".")


def param_table(params: Any) -> list[tuple[str, tuple[int, ...], int]]:
    """Every leaf of a parameter pytree as ``(name, shape, count)``, e.g. ``("layers[0].s4.Ct", (128, 32, 2), 8192)``."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError("params: expected a pytree with at least one array")
    return [(_path_name(p), tuple(np.shape(x)), int(np.prod(np.shape(x)))) for p, x in leaves]


def label_counts(labels: Any, params: Any) -> dict[str, dict[str, Any]]:
    """For each optimizer label: number of arrays, of numbers, and the leaf names (last key) carrying it.

    ``labels`` is a pytree of strings shaped like ``params`` (e.g. :func:`s4lite.train.param_labels`).
    """
    lab = jax.tree_util.tree_leaves(labels)
    rows = param_table(params)
    if len(lab) != len(rows):
        raise ValueError(f"labels: expected one label per parameter array ({len(rows)}), got {len(lab)}")
    out: dict[str, dict[str, Any]] = {}
    for label, (name, _, count) in zip(lab, rows):
        entry = out.setdefault(str(label), {"arrays": 0, "numbers": 0, "keys": set()})
        entry["arrays"] += 1
        entry["numbers"] += count
        entry["keys"].add(name.rsplit(".", 1)[-1])
    for entry in out.values():
        entry["keys"] = sorted(entry["keys"])
    return out


def measured_learning_rates(
    opt: optax.GradientTransformation, labels: Any, params: Any, n_steps: int
) -> dict[str, np.ndarray]:
    r"""The learning rate of each label at steps 0 … n_steps−1, read off the optimizer itself.

    With every parameter 0 and every gradient 1, Adam's bias-corrected moments are exactly 1, so
    its update is :math:`-\eta_t / (1 + \epsilon)` and AdamW's weight decay :math:`\lambda\theta`
    vanishes: minus the update of any leaf *is* its learning rate :math:`\eta_t` (to a relative
    :math:`10^{-8}`). The updates are not applied, so the same state is probed at every step.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps: expected an integer >= 1, got {n_steps!r}")
    zeros = jax.tree.map(lambda x: jnp.zeros(np.shape(x), jnp.float32), params)
    ones = jax.tree.map(jnp.ones_like, zeros)
    lab = jax.tree_util.tree_leaves(labels)
    first = {}
    for i, label in enumerate(lab):
        first.setdefault(str(label), i)

    def step(state, _):
        updates, state = opt.update(ones, state, zeros)
        leaves = jax.tree_util.tree_leaves(updates)
        return state, jnp.stack([-leaves[i].ravel()[0] for i in first.values()])

    _, lrs = jax.lax.scan(step, opt.init(zeros), None, length=int(n_steps))
    lrs = np.asarray(lrs, dtype=np.float64) * (1.0 + 1e-8)  # undo Adam's ε = 1e-8
    return {label: lrs[:, j] for j, label in enumerate(first)}


def plot_learning_rates(lrs: Mapping[str, np.ndarray], steps_per_epoch: int | None = None) -> Figure:
    """The learning-rate schedules of :func:`measured_learning_rates` against the step (and epoch)."""
    if not lrs:
        raise ValueError("lrs: expected at least one schedule")
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for label, v in lrs.items():
        ax.plot(np.arange(len(v)), v, label=f"{label!s} parameters")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if steps_per_epoch:
        sec = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        sec.set_xlabel("epoch")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _image(name: str, image: Any) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.shape == (784,):
        img = img.reshape(28, 28)
    if img.shape != (28, 28):
        raise ValueError(f"{name}: expected a 28 × 28 image (or 784 pixels), got shape {img.shape}")
    return img


def plot_digit_sequence(image: Any, label: int | None = None) -> Figure:
    """A digit as an image (left) and as the 784-step input sequence read row by row (right)."""
    img = _image("image", image)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 4]})
    ax1.imshow(img, cmap="gray_r")
    ax1.set_title("the image" if label is None else f"the image (label {label})")
    ax1.set_xlabel("column")
    ax1.set_ylabel("row")
    k = np.arange(784)
    ax2.plot(k, img.ravel(), lw=0.8)
    for r in range(1, 28):
        ax2.axvline(28 * r, color="0.85", lw=0.5, zorder=0)
    ax2.set_xlim(0, 783)
    ax2.set_xlabel("time step k (pixel k = 28·row + column; grey lines: row starts)")
    ax2.set_ylabel("input $u_k$")
    ax2.set_title("the same digit as a sequence of 784 inputs")
    fig.tight_layout()
    return fig


def plot_augmented(originals: Any, augmented: Any, labels: Sequence[int] | None = None) -> Figure:
    """Originals (top row) and augmented copies (rows below): ``originals (n, 28, 28)``, ``augmented (k, n, 28, 28)``."""
    orig = np.asarray(originals, dtype=np.float64)
    aug = np.asarray(augmented, dtype=np.float64)
    if orig.ndim != 3 or orig.shape[1:] != (28, 28):
        raise ValueError(f"originals: expected shape (n, 28, 28), got {orig.shape}")
    if aug.ndim != 4 or aug.shape[1:] != orig.shape:
        raise ValueError(f"augmented: expected shape (k, {orig.shape[0]}, 28, 28), got {aug.shape}")
    n, k = orig.shape[0], aug.shape[0]
    lo, hi = min(orig.min(), aug.min()), max(orig.max(), aug.max())
    fig, axes = plt.subplots(k + 1, n, figsize=(1.3 * n, 1.3 * (k + 1)), squeeze=False)
    for j in range(n):
        for i in range(k + 1):
            ax = axes[i, j]
            ax.imshow(orig[j] if i == 0 else aug[i - 1, j], cmap="gray_r", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
        if labels is not None:
            axes[0, j].set_title(f"label {labels[j]}", fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=8)
    for i in range(1, k + 1):
        axes[i, 0].set_ylabel(f"draw {i}", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Kernels and SSM parameters
# --------------------------------------------------------------------------------------------------


def plot_kernels(K: Any, step: Any, channels: Sequence[int]) -> Figure:
    """Kernels ``K (H, L)`` of the chosen channels against the lag j (log x), labelled by their Δ."""
    K = np.asarray(K, dtype=np.float64)
    step = np.asarray(step, dtype=np.float64)
    if K.ndim != 2 or step.shape != (K.shape[0],):
        raise ValueError(f"K, step: expected shapes (H, L) and (H,), got {K.shape} and {step.shape}")
    if not channels or any(not 0 <= c < K.shape[0] for c in channels):
        raise ValueError(f"channels: expected indices in [0, {K.shape[0]}), got {list(channels)}")
    fig, axes = plt.subplots(len(channels), 1, figsize=(8, 1.5 * len(channels) + 0.6), sharex=True, squeeze=False)
    j = np.arange(1, K.shape[1] + 1)
    for ax, c in zip(axes[:, 0], channels):
        ax.plot(j, K[c], lw=0.9)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xscale("log")
        ax.set_ylabel(r"$\bar K_j$")
        ax.text(0.99, 0.9, f"channel {c}, Δ = {step[c]:.2g} (1/Δ ≈ {1 / step[c]:.0f} steps)", transform=ax.transAxes,
                ha="right", va="top", fontsize=8)
    axes[-1, 0].set_xlabel("lag j + 1 (log scale)")
    fig.tight_layout()
    return fig


def kernel_image(K: Any, side: int = 28) -> np.ndarray:
    """A kernel of length ``side²`` as a ``(side, side)`` image: lag j at row j // side, column j % side.

    For a digit read row by row, row r of the image holds the weights of the inputs r image rows back.
    """
    K = np.asarray(K)
    if K.shape[-1:] != (side * side,):
        raise ValueError(f"K: expected a last axis of length side² = {side * side}, got shape {K.shape}")
    return K.reshape(K.shape[:-1] + (side, side))


def kernel_grid(
    K_init: Any, K_final: Any, channels: Sequence[int], side: int = 28, title: str = "", linthresh: float | None = 1e-2
) -> Figure:
    """Kernels before (top row) and after training (bottom row) as ``side × side`` images.

    ``K_init``, ``K_final`` are ``(H, side²)``; diverging colormap, limits symmetric about 0 and
    shared by the two images of a channel, so before and after are on one scale. With ``linthresh``
    (a fraction of the channel's largest |value|) the colour scale is symmetric-logarithmic beyond it,
    so that weak tails stay visible next to a strong first row; ``None`` gives a linear scale.
    """
    Ki, Kf = np.asarray(K_init, dtype=np.float64), np.asarray(K_final, dtype=np.float64)
    if Ki.shape != Kf.shape or Ki.ndim != 2:
        raise ValueError(f"K_init, K_final: expected two arrays of one shape (H, L), got {Ki.shape} and {Kf.shape}")
    if not channels or any(not 0 <= c < Ki.shape[0] for c in channels):
        raise ValueError(f"channels: expected indices in [0, {Ki.shape[0]}), got {list(channels)}")
    if linthresh is not None and not 0 < linthresh < 1:
        raise ValueError(f"linthresh: expected a fraction in (0, 1) or None, got {linthresh!r}")
    n = len(channels)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n + 0.6, 4.6), squeeze=False, layout="constrained")
    for j, c in enumerate(channels):
        lim = max(np.abs(Ki[c]).max(), np.abs(Kf[c]).max())
        if linthresh is None:
            norm = matplotlib.colors.Normalize(vmin=-lim, vmax=lim)
        else:
            norm = matplotlib.colors.SymLogNorm(linthresh=linthresh * lim, vmin=-lim, vmax=lim, base=10)
        for i, (K, when) in enumerate(((Ki[c], "before"), (Kf[c], "after"))):
            ax = axes[i, j]
            im = ax.imshow(kernel_image(K, side), cmap="RdBu_r", norm=norm)
            ax.set_xticks([0, side - 1])
            ax.set_yticks([0, side - 1])
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(f"channel {c}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{when}\nrows back", fontsize=8)
            if i == 1:
                ax.set_xlabel("columns back", fontsize=7)
        cb = fig.colorbar(im, ax=axes[:, j], location="bottom", shrink=0.9, aspect=12)
        cb.set_ticks([-lim, 0, lim], labels=[f"{-lim:.2g}", "0", f"{lim:.2g}"])
        cb.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def recent_energy_fraction(K: Any, n: int = 28) -> np.ndarray:
    r"""Share of a kernel's energy in its first ``n`` lags: :math:`\sum_{j<n} \bar K_j^2 / \sum_j \bar K_j^2`, over the last axis."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim < 1 or not 1 <= n <= K.shape[-1]:
        raise ValueError(f"n: expected 1 <= n <= L = {K.shape[-1] if K.ndim else 0}, got {n!r}")
    E = K**2
    total = E.sum(-1)
    if np.any(total == 0):
        raise ValueError("K: every kernel must have nonzero energy")
    return E[..., :n].sum(-1) / total


def plot_steps(step_init: Any, step_final: Any, bins: int = 30) -> Figure:
    """Histograms of Δ before and after training, one panel per layer, on a log x axis: ``(layers, H)`` each."""
    si, sf = np.asarray(step_init, dtype=np.float64), np.asarray(step_final, dtype=np.float64)
    if si.shape != sf.shape or si.ndim != 2:
        raise ValueError(f"step_init, step_final: expected two arrays of one shape (layers, H), got {si.shape}, {sf.shape}")
    if np.any(si <= 0) or np.any(sf <= 0):
        raise ValueError("step_init, step_final: step sizes must be > 0")
    edges = np.geomspace(min(si.min(), sf.min()), max(si.max(), sf.max()), bins + 1)
    n = si.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.6, 3.0), sharey=True, squeeze=False)
    for l, ax in enumerate(axes[0]):
        ax.hist(si[l], bins=edges, alpha=0.5, label="before")
        ax.hist(sf[l], bins=edges, histtype="step", lw=1.5, color="k", label="after")
        ax.set_xscale("log")
        ax.set_title(f"layer {l + 1}", fontsize=9)
        ax.set_xlabel("step size Δ")
    axes[0, 0].set_ylabel("channels")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_eigenvalues(Lambda_init: Any, Lambda_final: Any, layers: Sequence[int] = (0, -1)) -> Figure:
    """Λ of all channels in the complex plane, before (black rings) and after (colour), for the chosen layers.

    ``Lambda_* (layers, H, N/2)`` complex. The imaginary axis is symmetric-log (linear within ±1).
    """
    Li, Lf = np.asarray(Lambda_init), np.asarray(Lambda_final)
    if Li.shape != Lf.shape or Li.ndim != 3:
        raise ValueError(f"Lambda_init, Lambda_final: expected two arrays of one shape (layers, H, N/2), got {Li.shape}, {Lf.shape}")
    n = Li.shape[0]
    if not layers or any(not -n <= l < n for l in layers):
        raise ValueError(f"layers: expected indices in [-{n}, {n}), got {list(layers)}")
    fig, axes = plt.subplots(1, len(layers), figsize=(4.8 * len(layers), 3.8), sharey=True, squeeze=False)
    for ax, l in zip(axes[0], layers):
        ax.scatter(Lf[l].real.ravel(), Lf[l].imag.ravel(), s=2, color="C3", alpha=0.5, label="after (every channel)")
        ax.scatter(Li[l].real.ravel(), Li[l].imag.ravel(), s=28, facecolors="none", edgecolors="k", lw=0.8,
                   zorder=3, label="before (all channels alike)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel(r"Re $\Lambda$")
        ax.set_title(f"layer {l % n + 1}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(r"Im $\Lambda$ (symmetric log)")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def ssm_change_stats(kernels: Mapping[str, np.ndarray], n_recent: int = 28) -> list[dict[str, float]]:
    r"""Per layer, how much training moved the SSM, from the arrays of ``kernels.npz``.

    Each row: ``median_step_init``, ``median_step_final``, ``median_abs_log_step_change`` and
    ``max_abs_log_step_change`` (of :math:`\log(\Delta_\text{after}/\Delta_\text{before})`),
    ``median_rel_lambda_change`` (:math:`|\Lambda_\text{after} - \Lambda_\text{before}| / |\Lambda_\text{before}|`),
    ``median_abs_re_change`` and ``max_abs_re_change`` (of :math:`\operatorname{Re}\Lambda`, the decay rates),
    ``median_rel_im_change`` (relative change of :math:`\operatorname{Im}\Lambda`, all modes),
    ``median_rel_im_change_lowest`` (relative change of :math:`\operatorname{Im}\Lambda` of each channel's
    lowest-frequency mode, median over channels),
    ``median_rel_kernel_change`` (:math:`\|\bar K_\text{after} - \bar K_\text{before}\| / \|\bar K_\text{before}\|` per channel),
    ``median_recent_init`` and ``median_recent_final`` (:func:`recent_energy_fraction` with ``n_recent``).
    """
    missing = [f"{k}_{w}" for k in KERNEL_KEYS for w in ("init", "final") if f"{k}_{w}" not in kernels]
    if missing:
        raise ValueError(f"kernels: missing arrays {missing}")
    Ki, Kf = (np.asarray(kernels[f"kernels_{w}"], dtype=np.float64) for w in ("init", "final"))
    si, sf = (np.asarray(kernels[f"step_{w}"], dtype=np.float64) for w in ("init", "final"))
    Li, Lf = (np.asarray(kernels[f"Lambda_{w}"], dtype=np.complex128) for w in ("init", "final"))
    rows = []
    for l in range(Ki.shape[0]):
        log_change = np.log(sf[l] / si[l])
        rows_h = np.arange(Li.shape[1])
        low = np.argmin(np.abs(Li[l].imag), axis=-1)  # each channel's lowest-frequency mode (before training)
        im_change = np.abs(Lf[l].imag - Li[l].imag)
        rows.append(
            {
                "layer": l + 1,
                "median_step_init": float(np.median(si[l])),
                "median_step_final": float(np.median(sf[l])),
                "median_abs_log_step_change": float(np.median(np.abs(log_change))),
                "max_abs_log_step_change": float(np.max(np.abs(log_change))),
                "median_rel_lambda_change": float(np.median(np.abs(Lf[l] - Li[l]) / np.abs(Li[l]))),
                "median_abs_re_change": float(np.median(np.abs(Lf[l].real - Li[l].real))),
                "max_abs_re_change": float(np.max(np.abs(Lf[l].real - Li[l].real))),
                "median_rel_im_change": float(np.median(im_change / np.abs(Li[l].imag))),
                "median_rel_im_change_lowest": float(np.median(im_change[rows_h, low] / np.abs(Li[l].imag[rows_h, low]))),
                "median_rel_kernel_change": float(
                    np.median(np.linalg.norm(Kf[l] - Ki[l], axis=-1) / np.linalg.norm(Ki[l], axis=-1))
                ),
                "median_recent_init": float(np.median(recent_energy_fraction(Ki[l], n_recent))),
                "median_recent_final": float(np.median(recent_energy_fraction(Kf[l], n_recent))),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown (GFM) table; ``align`` is one of ``l``, ``r``, ``c`` per column (default: left, then right)."""
    header = [str(h) for h in header]
    if not header:
        raise ValueError("header: expected at least one column")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows[{i}]: expected {len(header)} cells, got {len(row)}")
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align: expected {len(header)} letters from 'l', 'r', 'c', got {align!r}")
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def step_variant_rows(bench: Mapping[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """The timings of ``benchmarks/step_variants.py`` as ``{"conv": [(name, ms)], "step": [(name, ms)]}``.

    ``conv`` holds the FFT convolution (``swap`` layout) for each FFT length and the Toeplitz
    product (default and ``highest`` matmul precision), forward + backward; ``step`` the full
    training step with the threefry generator for each convolution. Sorted by time.
    """
    for key in ("conv_fwd_bwd_ms", "step_ms"):
        if not isinstance(bench.get(key), Mapping):
            raise ValueError(f"bench: expected a '{key}' mapping (a step_variants JSON), got {type(bench.get(key)).__name__}")
    conv = []
    for name, ms in bench["conv_fwd_bwd_ms"].items():
        if name.startswith("swap_n"):
            conv.append((f"FFT, length {int(name[6:])}", float(ms)))
        elif name == "toeplitz_f32":
            conv.append(("Toeplitz matmul (default precision)", float(ms)))
        elif name == "toeplitz_f32_highest":
            conv.append(("Toeplitz matmul (highest precision)", float(ms)))
    step = []
    names = {"2L": "FFT, length 2L", "2048": "FFT, length 2048", "toeplitz": "Toeplitz matmul"}
    for name, ms in bench["step_ms"].items():
        variant, _, prng = name.partition("_")
        if prng == "threefry2x32" and variant in names:
            step.append((names[variant], float(ms)))
    return {"conv": sorted(conv, key=lambda r: r[1]), "step": sorted(step, key=lambda r: r[1])}


def energy_profile(K: Any) -> np.ndarray:
    r"""Mean over channels of each kernel's normalized energy :math:`\bar K_j^2 / \sum_i \bar K_i^2`: ``(..., H, L)`` → ``(..., L)``, sums to 1."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim < 2:
        raise ValueError(f"K: expected shape (..., H, L), got {K.shape}")
    E = K**2
    total = E.sum(-1, keepdims=True)
    if np.any(total == 0):
        raise ValueError("K: every kernel must have nonzero energy")
    return (E / total).mean(-2)


def plot_energy_profiles(kernels_init: Any, kernels_final: Any, side: int = 28, max_lag: int = 784) -> Figure:
    """:func:`energy_profile` of every layer before (grey) and after (colour) against the lag (log y).

    ``kernels_* (layers, H, L)``; grey vertical lines mark whole image rows (multiples of ``side``).
    """
    Pi, Pf = energy_profile(kernels_init), energy_profile(kernels_final)
    if Pi.shape != Pf.shape or Pi.ndim != 2:
        raise ValueError(f"kernels_init, kernels_final: expected two arrays of one shape (layers, H, L), got {np.shape(kernels_init)}, {np.shape(kernels_final)}")
    n, L = Pi.shape
    max_lag = min(int(max_lag), L)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n + 0.6, 3.0), sharey=True, squeeze=False)
    j = np.arange(max_lag)
    for l, ax in enumerate(axes[0]):
        for r in range(side, max_lag, side):
            ax.axvline(r, color="0.9", lw=0.5, zorder=0)
        ax.semilogy(j, Pi[l, :max_lag], color="0.55", lw=1, label="before")
        ax.semilogy(j, Pf[l, :max_lag], color="C3", lw=1, label="after")
        ax.set_title(f"layer {l + 1}", fontsize=9)
        ax.set_xlabel("lag j (steps)")
    axes[0, 0].set_ylabel("mean share of kernel energy")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_decay_rates(Lambda_init: Any, Lambda_final: Any, layers: Sequence[int] = (0, -1)) -> Figure:
    r"""Decay rate :math:`\operatorname{Re}\Lambda` after training against the frequency :math:`|\operatorname{Im}\Lambda|` (log x).

    Before training every channel has the same HiPPO-LegS :math:`\Lambda` with real part −1/2 (grey);
    the coloured points are every channel after training. ``Lambda_* (layers, H, N/2)``.
    """
    Li, Lf = np.asarray(Lambda_init), np.asarray(Lambda_final)
    if Li.shape != Lf.shape or Li.ndim != 3:
        raise ValueError(f"Lambda_init, Lambda_final: expected two arrays of one shape (layers, H, N/2), got {Li.shape}, {Lf.shape}")
    n = Li.shape[0]
    if not layers or any(not -n <= l < n for l in layers):
        raise ValueError(f"layers: expected indices in [-{n}, {n}), got {list(layers)}")
    fig, axes = plt.subplots(1, len(layers), figsize=(4.8 * len(layers), 3.4), sharey=True, squeeze=False)
    for ax, l in zip(axes[0], layers):
        ax.scatter(np.abs(Lf[l].imag).ravel(), Lf[l].real.ravel(), s=2, color="C3", alpha=0.4, label="after (every channel)")
        ax.scatter(np.abs(Li[l].imag).ravel(), Li[l].real.ravel(), s=12, color="0.3", label="before")
        ax.set_xscale("log")
        ax.set_xlabel(r"frequency $|\mathrm{Im}\,\Lambda|$ (log)")
        ax.set_title(f"layer {l % n + 1}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(r"decay rate Re $\Lambda$")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def same_column_ratio(K: Any, side: int = 28, rows: int = 5, offsets: Sequence[int] = (3, 4, 5, 6)) -> np.ndarray:
    r"""Does a kernel single out the pixel in the *same column* of earlier image rows?

    For lags :math:`j = r\cdot\text{side}` (the same column, r = 1 … ``rows`` rows back) against the
    nearby lags :math:`r\cdot\text{side} \pm d` (``d`` in ``offsets``): the mean of :math:`\bar K_j^2` over the
    first set divided by its mean over the second, per kernel (last axis). About 1: no preference; well
    above 1: the kernel reaches back to the same column of earlier rows.
    """
    K = np.asarray(K, dtype=np.float64)
    if not offsets or any(not 0 < d < side for d in offsets):
        raise ValueError(f"offsets: expected integers in (0, {side}), got {list(offsets)}")
    if rows < 1 or (rows * side + max(offsets)) >= K.shape[-1]:
        raise ValueError(f"rows: expected 1 <= rows with rows·side + max(offsets) < L = {K.shape[-1]}, got {rows}")
    E = K**2
    on = np.stack([E[..., r * side] for r in range(1, rows + 1)], -1).mean(-1)
    near = np.stack([E[..., r * side + s * d] for r in range(1, rows + 1) for d in offsets for s in (-1, 1)], -1).mean(-1)
    if np.any(near == 0):
        raise ValueError("K: the kernel is zero at all comparison lags")
    return on / near


def energy_extent(K: Any, q: float = 0.9) -> np.ndarray:
    r"""The number of leading lags that hold a share ``q`` of each kernel's energy (last axis), as integers.

    The smallest n with :math:`\sum_{j<n} \bar K_j^2 \ge q \sum_j \bar K_j^2`: how far back the kernel reaches.
    """
    K = np.asarray(K, dtype=np.float64)
    if not 0 < q <= 1:
        raise ValueError(f"q: expected a share in (0, 1], got {q!r}")
    E = K**2
    total = E.sum(-1, keepdims=True)
    if np.any(total == 0):
        raise ValueError("K: every kernel must have nonzero energy")
    share = np.cumsum(E, -1) / total
    return np.sum(share < q * (1 - 1e-12), axis=-1) + 1
