r"""Helpers for chapter 12 (generating digits pixel by pixel).

The runs are written by ``python -m s4lite.generation`` (:mod:`s4lite.generation`): a directory with
``config.json``, ``metrics.json`` (per-epoch NLL history, the RNN-vs-CNN logit check, generation
speeds) and ``samples.npz`` (``originals``, ``completions``, ``unconditional``: uint8 ``(n, 784)``;
``prefix_length``); the recorded run keeps the training run's files in ``training/``.

* **Reading**: :func:`find_generation`, :func:`load_generation`, :func:`history_columns`,
  :func:`bits_per_pixel`.
* **The network as an RNN over given inputs**: :func:`rnn_outputs` (the recurrent counterpart of
  :func:`s4lite.model.sequence_outputs`), :func:`setup_condition_numbers` (how well posed the
  recovery of C from C̃ is), :func:`best_seconds` (timing).
* **Figures**: :func:`plot_nll_curve`, :func:`prefix_boundary`, :func:`plot_digit_grid`,
  :func:`plot_speed`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..dplr_step import dense_from_discrete
from ..model import step_outputs
from ._io import find_artifact
from ._io import read_json_object as _read_json

#: Keys of every epoch of ``metrics.json``'s ``history``.
HISTORY_KEYS = ("epoch", "train_nll", "test_nll", "train_time", "test_bits_per_pixel")
#: Top-level keys of ``metrics.json``.
METRICS_KEYS = (
    "history",
    "final_test_nll_nats",
    "final_test_bits_per_pixel",
    "rnn_vs_cnn_max_abs_diff",
    "rnn_vs_cnn_max_abs_logit",
    "rnn_pixels_per_s",
    "conv_pixels_per_s",
    "speed_batch",
    "conv_speed_steps",
    "train_time_s",
)
#: Arrays of ``samples.npz``.
SAMPLE_KEYS = ("originals", "completions", "unconditional", "prefix_length")


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def find_generation(relpath: str = "artifacts/generation", start: str | Path | None = None) -> Path | None:
    """The directory ``<dir>/relpath`` holding ``metrics.json`` for ``dir`` = ``start`` or a parent; else None."""
    found = find_artifact(f"{relpath.rstrip('/')}/metrics.json", start)
    return None if found is None else found.parent


def _check_metrics(metrics: dict, where: Path) -> dict:
    missing = [k for k in METRICS_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"path: {str(where)!r} lacks {missing}")
    history_columns(metrics["history"])  # validates
    return metrics


def load_generation(path: str | Path) -> dict[str, Any]:
    """Read a generation run directory.

    Returns ``{"path", "config", "metrics", "samples", "training"}``: the JSON files as dicts,
    ``samples`` the arrays of ``samples.npz`` (``prefix_length`` as an int), and ``training`` the
    ``config``/``metrics`` of the ``training/`` subdirectory when there is one (else None).
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path: expected a directory written by s4lite.generation, got {str(path)!r}")
    for name in ("config.json", "metrics.json", "samples.npz"):
        if not (path / name).is_file():
            raise ValueError(f"path: {str(path)!r} has no {name} (is it an s4lite.generation output directory?)")
    with np.load(path / "samples.npz", allow_pickle=False) as f:
        missing = [k for k in SAMPLE_KEYS if k not in f.files]
        if missing:
            raise ValueError(f"path: samples.npz lacks {missing}")
        samples = {k: f[k] for k in SAMPLE_KEYS}
    samples["prefix_length"] = int(samples["prefix_length"])
    training = None
    if (path / "training" / "metrics.json").is_file():
        training = {
            "config": _read_json(path / "training" / "config.json"),
            "metrics": _check_metrics(_read_json(path / "training" / "metrics.json"), path / "training" / "metrics.json"),
        }
    return {
        "path": path,
        "config": _read_json(path / "config.json"),
        "metrics": _check_metrics(_read_json(path / "metrics.json"), path / "metrics.json"),
        "samples": samples,
        "training": training,
    }


def history_columns(history: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-epoch records → one float64 array per key of :data:`HISTORY_KEYS` (``epoch`` as int)."""
    if not isinstance(history, (list, tuple)) or not history:
        raise ValueError("history: expected a non-empty list of epochs")
    for i, row in enumerate(history):
        missing = [k for k in HISTORY_KEYS if k not in row]
        if missing:
            raise ValueError(f"history[{i}]: missing keys {missing}")
    cols = {k: np.array([float(r[k]) for r in history]) for k in HISTORY_KEYS}
    cols["epoch"] = cols["epoch"].astype(int)
    if np.any(np.diff(cols["epoch"]) <= 0):
        raise ValueError(f"history: expected increasing epochs, got {cols['epoch'].tolist()}")
    return cols


def bits_per_pixel(nats: Any) -> Any:
    r"""An NLL per pixel in nats → bits: :math:`\text{bits} = \text{nats} / \ln 2`."""
    return np.asarray(nats, np.float64) / math.log(2.0) if np.ndim(nats) else float(nats) / math.log(2.0)


# --------------------------------------------------------------------------------------------------
# The network as an RNN over given inputs
# --------------------------------------------------------------------------------------------------


def rnn_outputs(params: dict[str, Any], forms: list, x: jax.Array) -> jax.Array:
    r"""The network in RNN mode over given inputs: ``x (B, L, d_input)`` → ``(B, L, d_output)``.

    Every sequence starts from zero states and takes one :func:`s4lite.model.step_outputs` per
    position (O(N) per channel and step). This is what :func:`s4lite.generation.generate` does while it
    reads a prefix (teacher forcing), and equals :func:`s4lite.model.sequence_outputs` on the same
    ``x``. ``forms`` come from :func:`s4lite.model.init_recurrent` for this ``L``; jit-compatible.
    """
    x = jnp.asarray(x)
    if x.ndim != 3 or x.shape[-1] != params["encoder"]["W"].shape[0]:
        raise ValueError(f"x: expected shape (B, L, {params['encoder']['W'].shape[0]}), got {x.shape}")
    states = [jnp.zeros((x.shape[0],) + C.shape, C.dtype) for _, C in forms]
    step = jax.vmap(step_outputs, in_axes=(None, None, 0, 0))
    _, out = jax.lax.scan(lambda s, x_t: step(params, forms, s, x_t), states, jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(out, 0, 1)


def setup_condition_numbers(forms: list, L: int) -> np.ndarray:
    r"""Condition numbers of :math:`I - \bar A^L` for every layer and channel, ``(layers, H)``.

    The recurrent form recovers C from the learned :math:`\tilde C` by solving
    :math:`C(I - \bar A^L) = \tilde C` (:func:`s4lite.layer.c_from_ctilde`); a linear solve loses about
    :math:`\log_{10}\kappa` decimal digits, with :math:`\kappa = \|I - \bar A^L\|_2\|(I - \bar A^L)^{-1}\|_2`.
    ``forms`` are those of :func:`s4lite.model.init_recurrent`; :math:`\bar A` is materialized from each
    channel's structured step (:func:`s4lite.dplr_step.dense_from_discrete`) and its L-th power and
    the condition number are computed in complex128 with NumPy.
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L: expected an integer >= 1, got {L!r}")
    out = []
    for disc, _ in forms:
        Ab = np.asarray(jax.vmap(dense_from_discrete)(disc)[0], np.complex128)  # (H, N, N)
        M = np.eye(Ab.shape[-1]) - np.linalg.matrix_power(Ab, int(L))
        out.append(np.linalg.cond(M))
    return np.array(out)


def best_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Shortest wall-clock time of ``repeats`` calls of ``fn()`` (each waited for with ``block_until_ready``).

    Call ``fn`` once before (compilation is not timed here).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, got {repeats!r}")
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def plot_nll_curve(history: Sequence[Mapping[str, Any]], scheduled_epochs: int | None = None) -> Figure:
    """Train and test NLL per pixel against the epoch: nats on the left axis, bits on the right.

    With ``scheduled_epochs`` the x axis spans the whole schedule and the epochs that were never run
    are shaded.
    """
    m = history_columns(history)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(m["epoch"], m["train_nll"], lw=1, label="train (mean over the epoch's batches)")
    ax.plot(m["epoch"], m["test_nll"], lw=1.4, label="test (after the epoch)")
    i = int(np.argmin(m["test_nll"]))
    ax.plot(m["epoch"][i], m["test_nll"][i], "o", ms=4, color="C1", label=f"lowest test NLL (epoch {m['epoch'][i]})")
    if scheduled_epochs is not None:
        if isinstance(scheduled_epochs, bool) or not isinstance(scheduled_epochs, (int, np.integer)) or scheduled_epochs < m["epoch"][-1]:
            raise ValueError(f"scheduled_epochs: expected an integer >= the last epoch {m['epoch'][-1]}, got {scheduled_epochs!r}")
        ax.axvspan(m["epoch"][-1], scheduled_epochs, color="gray", alpha=0.15, lw=0, label="scheduled, not run")
        ax.set_xlim(0, scheduled_epochs)
    lo = min(m["train_nll"].min(), m["test_nll"].min())
    hi = np.quantile(np.concatenate([m["train_nll"], m["test_nll"]]), 0.98)
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL per pixel (nats)")
    right = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2.0), lambda b: b * math.log(2.0)))
    right.set_ylabel("bits per pixel")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def prefix_boundary(prefix_length: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """The outline between the first ``prefix_length`` pixels (row-major) and the rest of a ``side × side`` image.

    Returns ``(xs, ys)`` in ``imshow`` pixel coordinates (pixel centres at integers): a straight line
    under the last full row, with a step where the prefix ends inside a row.
    """
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
        raise ValueError(f"side: expected an integer >= 1, got {side!r}")
    if isinstance(prefix_length, bool) or not isinstance(prefix_length, (int, np.integer)) or not 0 <= prefix_length <= side * side:
        raise ValueError(f"prefix_length: expected an integer in [0, {side * side}], got {prefix_length!r}")
    r, c = divmod(int(prefix_length), side)
    lo, hi = -0.5, side - 0.5
    if c == 0:
        return np.array([lo, hi]), np.array([r - 0.5, r - 0.5])
    return np.array([lo, c - 0.5, c - 0.5, hi]), np.array([r + 0.5, r + 0.5, r - 0.5, r - 0.5])


def plot_digit_grid(
    rows: Mapping[str, Any],
    prefix_length: int | None = None,
    marked: Sequence[str] = (),
    side: int = 28,
    title: str = "",
) -> Figure:
    """Digits in a grid, one row per entry of ``rows`` (label → pixels ``(n, side·side)``, 0…255).

    Rows named in ``marked`` get the prefix boundary (:func:`prefix_boundary`) drawn in red. Ink is
    dark (a white background, as the digits are usually printed).
    """
    if not rows:
        raise ValueError("rows: expected at least one row of digits")
    arrays = {}
    for name, x in rows.items():
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != side * side:
            raise ValueError(f"rows[{name!r}]: expected shape (n, {side * side}), got {x.shape}")
        arrays[name] = x
    for name in marked:
        if name not in arrays:
            raise ValueError(f"marked: {name!r} is not one of the rows {list(arrays)}")
    if marked and prefix_length is None:
        raise ValueError("prefix_length: needed to mark the prefix boundary")
    n = max(x.shape[0] for x in arrays.values())
    fig, axes = plt.subplots(len(arrays), n, figsize=(0.75 * n + 0.6, 0.8 * len(arrays) + (0.35 if title else 0.1)), squeeze=False)
    for i, (name, x) in enumerate(arrays.items()):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= x.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(x[j].reshape(side, side), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            if name in marked:
                xs, ys = prefix_boundary(int(prefix_length), side)
                ax.plot(xs, ys, color="red", lw=0.9)
                ax.set_xlim(-0.5, side - 0.5)
                ax.set_ylim(side - 0.5, -0.5)
        axes[i, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.2)
    return fig


def plot_speed(rates: Mapping[str, float], title: str = "") -> Figure:
    """Bars of generation speeds (pixels per second, log scale), each labelled with its value.

    With two bars the ratio of the first to the second is written above them.
    """
    if not rates:
        raise ValueError("rates: expected at least one speed")
    names = list(rates)
    values = np.array([float(rates[k]) for k in names])
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"rates: expected finite speeds > 0, got {dict(zip(names, values.tolist()))}")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bars = ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))], width=0.55)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylabel("generated pixels per second (log)")
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, v * 1.15, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(values.min() / 3, values.max() * 8)
    if len(values) == 2:
        first, second = (n.splitlines()[0] for n in names)
        ax.set_title((title + "\n" if title else "") + f"{first} / {second}: {values[0] / values[1]:,.0f}×", fontsize=10)
    elif title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    return fig
