r"""Reading training runs and the learned kernels (chapters 8–10).

* **Runs** (directories written by ``python -m s4lite.train``): :func:`find_run`, :func:`load_run`
  (config, summary, per-epoch metrics as columns, kernel snapshots), :func:`metrics_columns`.
  The config comes back with each option under both spellings (``batch-size`` and ``batch_size``,
  :func:`config_both_spellings`), so readers work with runs written under either naming.
* :func:`measured_learning_rates` — the schedule read off the real optimizer.
* :func:`energy_extent` — how many leading lags hold a share of a kernel's energy.
* :func:`markdown_table` (from :mod:`s4lite.viz.common`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .common import find_artifact, markdown_table
from .common import read_json_object as _read_json

__all__ = [
    "KERNEL_KEYS",
    "METRIC_KEYS",
    "config_both_spellings",
    "energy_extent",
    "find_run",
    "load_run",
    "markdown_table",
    "measured_learning_rates",
    "metrics_columns",
]

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


def config_both_spellings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every key also under its other spelling (``batch-size`` ↔ ``batch_size``).

    Keys recorded in the file win over the added aliases, so nothing recorded is overwritten.
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.setdefault(key.replace("-", "_"), value)
        out.setdefault(key.replace("_", "-"), value)
    out.update(config)
    return out


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
        "config": config_both_spellings(_read_json(path / "config.json")),
        "summary": _read_json(path / "summary.json"),
        "metrics": metrics_columns(rows),
        "kernels": kernels,
    }


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
