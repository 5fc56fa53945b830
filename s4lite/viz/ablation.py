r"""Helpers for chapter 11 (does HiPPO matter?): read, summarize and plot the ablation runs.

The runs are written by ``python -m s4lite.ablation`` (:mod:`s4lite.ablation`): a directory with
``config.json`` (the options, command, device, commit, date) and ``results.json`` (one entry per
trained cell: ``kind``, ``train_A``, ``dropout``, ``seed``, ``n_params``, the per-epoch ``history`` and
the final accuracies). Nothing here trains a model.

* **Reading**: :func:`find_ablation`, :func:`load_ablation`, :func:`check_results`.
* **Numbers**: :func:`summary_table` (mean and spread over seeds per cell), :func:`training_effect`
  (trained − frozen, per kind and dropout, with the paired per-seed differences),
  :func:`best_cells`, :func:`accuracy_noise`.
* **Figures**: :func:`plot_ablation_curves` (test error against the epoch, one panel per dropout),
  :func:`plot_final_accuracy` (every seed's final accuracy), :func:`plot_spectra` (the spectra at
  initialization, one panel per kind).
* **Initializations**: :func:`spectrum` (Λ or the eigenvalues of A of one channel, any kind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter

from ..ablation import KINDS
from ._io import find_artifact

#: Keys every entry of ``results.json`` has (see :func:`s4lite.ablation.run_cell`).
RESULT_KEYS = ("kind", "train_A", "dropout", "seed", "n_params", "history", "final_test_acc", "final_train_acc")
#: Keys of every epoch of a ``history``.
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_acc", "time")
#: Short names for tables and legends.
KIND_LABELS = {"hippo": "HiPPO", "random_nplr": "random NPLR", "random_diag": "random diagonal", "random_dense": "random dense"}
_COLORS = {"hippo": "C0", "random_nplr": "C1", "random_diag": "C2", "random_dense": "C3"}


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def find_ablation(relpath: str = "artifacts/ablations", start: str | Path | None = None) -> Path | None:
    """The directory ``<dir>/relpath`` holding ``results.json`` for ``dir`` = ``start`` or a parent; else None."""
    found = find_artifact(f"{relpath.rstrip('/')}/results.json", start)
    return None if found is None else found.parent


def check_results(results: Any) -> list[dict[str, Any]]:
    """Validate a ``results.json`` list (keys, kinds, non-empty histories); returns it as a list of dicts."""
    if not isinstance(results, list) or not results:
        raise ValueError(f"results: expected a non-empty list of runs, got {type(results).__name__}")
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"results[{i}]: expected a dict, got {type(r).__name__}")
        missing = [k for k in RESULT_KEYS if k not in r]
        if missing:
            raise ValueError(f"results[{i}]: missing keys {missing}")
        if r["kind"] not in KINDS:
            raise ValueError(f"results[{i}]: kind expected one of {list(KINDS)}, got {r['kind']!r}")
        if not r["history"]:
            raise ValueError(f"results[{i}]: empty history")
        for j, h in enumerate(r["history"]):
            missing = [k for k in HISTORY_KEYS if k not in h]
            if missing:
                raise ValueError(f"results[{i}]['history'][{j}]: missing keys {missing}")
    return list(results)


def load_ablation(path: str | Path) -> dict[str, Any]:
    """Read an ablation directory: ``{"path", "config", "results"}`` (``results`` checked by :func:`check_results`)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path: expected a directory written by s4lite.ablation, got {str(path)!r}")
    data = {}
    for name in ("config.json", "results.json"):
        if not (path / name).is_file():
            raise ValueError(f"path: {str(path)!r} has no {name} (is it an s4lite.ablation output directory?)")
        try:
            data[name] = json.loads((path / name).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"path: {str(path / name)!r} is not valid JSON ({err})") from err
    if not isinstance(data["config.json"], dict):
        raise ValueError(f"path: {str(path / 'config.json')!r} should hold a JSON object")
    return {"path": path, "config": data["config.json"], "results": check_results(data["results.json"])}


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------


def _cells(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, bool, float], list[Mapping[str, Any]]]:
    """Runs grouped by ``(kind, train_A, dropout)``, each group sorted by seed; kinds in :data:`KINDS` order."""
    groups: dict[tuple[str, bool, float], list[Mapping[str, Any]]] = {}
    for r in check_results(list(results)):
        groups.setdefault((r["kind"], bool(r["train_A"]), float(r["dropout"])), []).append(r)
    order = sorted(groups, key=lambda c: (KINDS.index(c[0]), c[2], c[1]))
    return {c: sorted(groups[c], key=lambda r: r["seed"]) for c in order}


def summary_table(results: Sequence[Mapping[str, Any]], key: str = "final_test_acc") -> list[dict[str, Any]]:
    """One row per cell ``(kind, train_A, dropout)`` with the seeds' ``key`` values summarized.

    Row keys: ``kind``, ``train_A``, ``dropout``, ``n_params``, ``seeds``, ``values`` (per seed),
    ``mean``, ``std`` (population standard deviation, ddof 0), ``min``, ``max`` and
    ``spread`` = (max − min)/2, half the range. For two seeds ``spread`` equals ``std``: the two
    values are mean ± spread.
    """
    if key not in ("final_test_acc", "final_train_acc"):
        raise ValueError(f"key: expected 'final_test_acc' or 'final_train_acc', got {key!r}")
    rows = []
    for (kind, train_a, dropout), runs in _cells(results).items():
        v = np.array([float(r[key]) for r in runs])
        rows.append(
            {
                "kind": kind,
                "train_A": train_a,
                "dropout": dropout,
                "n_params": int(runs[0]["n_params"]),
                "seeds": [int(r["seed"]) for r in runs],
                "values": v,
                "mean": float(v.mean()),
                "std": float(v.std()),
                "min": float(v.min()),
                "max": float(v.max()),
                "spread": float((v.max() - v.min()) / 2),
            }
        )
    return rows


def _row(rows: Sequence[Mapping[str, Any]], kind: str, train_a: bool, dropout: float) -> Mapping[str, Any]:
    for r in rows:
        if r["kind"] == kind and r["train_A"] == train_a and r["dropout"] == dropout:
            return r
    raise ValueError(f"rows: no cell for kind {kind!r}, train_A {train_a}, dropout {dropout}")


def training_effect(results: Sequence[Mapping[str, Any]], key: str = "final_test_acc") -> list[dict[str, Any]]:
    r"""Trained − frozen, per ``(kind, dropout)``: does training A help?

    Row keys: ``kind``, ``dropout``, ``delta`` = mean(trained) − mean(frozen); ``noise`` = the larger of
    the two cells' seed spreads (:func:`summary_table`); ``paired`` = trained − frozen for each seed
    (the two runs of a seed start from the same initialization and see the same batches, so their
    difference isolates the effect of training A); ``clear`` = True when ``|delta| > noise`` and every
    paired difference has the sign of ``delta``.
    """
    rows = summary_table(results, key)
    out = []
    seen = []
    for r in rows:
        cell = (r["kind"], r["dropout"])
        if cell in seen:
            continue
        seen.append(cell)
        frozen, trained = _row(rows, r["kind"], False, r["dropout"]), _row(rows, r["kind"], True, r["dropout"])
        if frozen["seeds"] != trained["seeds"]:
            raise ValueError(f"results: kind {r['kind']!r} dropout {r['dropout']}: frozen seeds {frozen['seeds']} != trained seeds {trained['seeds']}")
        delta = trained["mean"] - frozen["mean"]
        paired = trained["values"] - frozen["values"]
        noise = max(frozen["spread"], trained["spread"])
        out.append(
            {
                "kind": r["kind"],
                "dropout": r["dropout"],
                "delta": float(delta),
                "noise": float(noise),
                "paired": paired,
                "clear": bool(abs(delta) > noise and np.all(np.sign(paired) == np.sign(delta)) and delta != 0),
            }
        )
    return out


def best_cells(results: Sequence[Mapping[str, Any]], key: str = "final_test_acc") -> dict[str, dict[str, Any]]:
    """For every kind, its best cell by mean ``key`` (over frozen/trained and dropout): kind → summary row."""
    best: dict[str, dict[str, Any]] = {}
    for r in summary_table(results, key):
        if r["kind"] not in best or r["mean"] > best[r["kind"]]["mean"]:
            best[r["kind"]] = r
    return best


def accuracy_noise(accuracy: float, n_test: int) -> float:
    r"""Standard deviation of an accuracy measured on ``n_test`` independent test examples: :math:`\sqrt{p(1-p)/n}`."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy: expected a number in [0, 1], got {accuracy!r}")
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 1:
        raise ValueError(f"n_test: expected an integer >= 1, got {n_test!r}")
    return float(np.sqrt(accuracy * (1.0 - accuracy) / n_test))


def curves(results: Sequence[Mapping[str, Any]], key: str = "test_acc") -> dict[tuple[str, bool, float], dict[str, np.ndarray]]:
    """Per cell: ``epoch`` and the seeds' ``key`` per epoch as ``values (seeds, epochs)`` (runs cut short are trimmed)."""
    if key not in ("test_acc", "train_acc", "train_loss"):
        raise ValueError(f"key: expected 'test_acc', 'train_acc' or 'train_loss', got {key!r}")
    out = {}
    for cell, runs in _cells(results).items():
        n = min(len(r["history"]) for r in runs)
        out[cell] = {
            "epoch": np.array([h["epoch"] for h in runs[0]["history"][:n]], dtype=int),
            "values": np.array([[float(h[key]) for h in r["history"][:n]] for r in runs]),
        }
    return out


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def plot_ablation_curves(results: Sequence[Mapping[str, Any]]) -> Figure:
    """Test error 1 − accuracy (%, log scale) against the epoch, one panel per dropout rate.

    One colour per kind; solid = A trained, dashed = A frozen; the line is the mean over seeds and
    the shaded band spans the seeds' minimum to maximum.
    """
    cs = curves(results, "test_acc")
    dropouts = sorted({c[2] for c in cs})
    fig, axes = plt.subplots(1, len(dropouts), figsize=(5.2 * len(dropouts), 3.9), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], dropouts):
        for (kind, train_a, dropout), c in cs.items():
            if dropout != p:
                continue
            err = 100 * (1 - c["values"])
            style = "-" if train_a else "--"
            label = f"{KIND_LABELS[kind]}, A {'trained' if train_a else 'frozen'}"
            ax.semilogy(c["epoch"], err.mean(axis=0), style, color=_COLORS[kind], lw=1.4, label=label)
            if err.shape[0] > 1:
                ax.fill_between(c["epoch"], err.min(axis=0), err.max(axis=0), color=_COLORS[kind], alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.set_title(f"dropout {p:g}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yticks([1, 2, 3, 5, 10, 20, 50])
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("test error = 1 − accuracy (%, log)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=4, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def plot_final_accuracy(results: Sequence[Mapping[str, Any]]) -> Figure:
    """Final test accuracy of every run: one group per kind, frozen (open) and trained (filled) per dropout."""
    rows = summary_table(results)
    dropouts = sorted({r["dropout"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 3.6))
    xt, xl = [], []
    for i, kind in enumerate(k for k in KINDS if any(r["kind"] == k for r in rows)):
        for j, p in enumerate(dropouts):
            for t, train_a in enumerate((False, True)):
                try:
                    r = _row(rows, kind, train_a, p)
                except ValueError:
                    continue
                x = i * (2 * len(dropouts) + 1) + 2 * j + t
                face = _COLORS[kind] if train_a else "white"
                ax.scatter(np.full(len(r["values"]), x), 100 * r["values"], s=22, facecolor=face, edgecolor=_COLORS[kind], zorder=3)
                ax.hlines(100 * r["mean"], x - 0.35, x + 0.35, color="k", lw=1)
                xt.append(x)
                xl.append(f"{'T' if train_a else 'F'}\n{p:g}")
        ax.text(i * (2 * len(dropouts) + 1) + len(dropouts) - 0.5, 1.01, KIND_LABELS[kind], transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9, color=_COLORS[kind])
    ax.set_xticks(xt, xl, fontsize=7)
    ax.set_xlabel("A frozen (F, open) or trained (T, filled); dropout rate")
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def spectrum(ssm: Mapping[str, Any], channel: int = 0) -> np.ndarray:
    r"""The spectrum that defines one channel's dynamics at a glance, ``(N,)`` complex128.

    DPLR kinds (``hippo``, ``random_nplr``, ``random_diag``): the diagonal :math:`\Lambda` of
    :math:`A = \operatorname{diag}\Lambda - PP^*`, both members of each conjugate pair (the stored
    half and its conjugate). These are the parameters the layer learns; the eigenvalues of the full
    non-normal HiPPO matrix are too ill-conditioned to compute reliably (chapter 5). Dense kind: the
    eigenvalues of the stored ``"A"`` (shared by all channels).
    """
    if "A" in ssm:
        return np.linalg.eigvals(np.asarray(ssm["A"], np.float64)).astype(np.complex128)
    for k in ("log_neg_re", "im"):
        if k not in ssm:
            raise ValueError(f"ssm: expected the parameters of an SSM layer ('A', or 'log_neg_re' and 'im'), missing {k!r}")
    H = np.shape(ssm["im"])[0]
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < H:
        raise ValueError(f"channel: expected an integer in [0, {H}), got {channel!r}")
    lam = -np.exp(np.asarray(ssm["log_neg_re"][channel], np.float64)) + 1j * np.asarray(ssm["im"][channel], np.float64)
    return np.concatenate([lam, lam.conj()])


def plot_spectra(spectra: Mapping[str, Any]) -> Figure:
    """Spectra in the complex plane (:func:`spectrum`), one panel per kind; imaginary axis symmetric-log.

    ``spectra`` maps a kind to its complex values. The dashed line marks Re = −1/2.
    """
    if not spectra:
        raise ValueError("spectra: expected at least one kind")
    fig, axes = plt.subplots(1, len(spectra), figsize=(2.6 * len(spectra), 3.2), sharey=True, squeeze=False)
    for ax, (kind, ev) in zip(axes[0], spectra.items()):
        ev = np.asarray(ev)
        if ev.ndim != 1 or ev.size == 0:
            raise ValueError(f"spectra[{kind!r}]: expected a non-empty vector, got shape {ev.shape}")
        ax.scatter(ev.real, ev.imag, s=8, color=_COLORS.get(kind, "k"))
        ax.axvline(0, color="gray", lw=0.8)
        ax.axvline(-0.5, color="gray", ls="--", lw=0.8)
        ax.set_xlim(-2.2, 0.3)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_title(KIND_LABELS.get(kind, kind), fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(r"Im $\lambda$ (symmetric log)")
    fig.tight_layout()
    return fig
