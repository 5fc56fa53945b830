"""Tests for the Part III helpers: ``s4lite.viz.ablation`` (chapter 11) and ``s4lite.viz.generation`` (chapter 12).

Runs are small synthetic directories written to ``tmp_path`` in the formats of ``s4lite.ablation``
and ``s4lite.generation``; float64 is on (conftest).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.collections

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from s4lite.ablation import init_ssm  # noqa: E402
from s4lite.generation import shift_right  # noqa: E402
from s4lite.layer import hippo_half  # noqa: E402
from s4lite.model import init_model, init_recurrent, sequence_outputs  # noqa: E402
from s4lite.viz import ablation as va  # noqa: E402
from s4lite.viz import generation as vg  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------------
# Ablation
# --------------------------------------------------------------------------------------------------

# final test accuracy per (kind, train_A, dropout) and seed 0, 1
FINAL = {
    ("hippo", False, 0.0): (0.90, 0.92),
    ("hippo", True, 0.0): (0.95, 0.96),
    ("random_diag", False, 0.0): (0.80, 0.90),
    ("random_diag", True, 0.0): (0.82, 0.89),
    ("hippo", False, 0.1): (0.91, 0.91),
    ("hippo", True, 0.1): (0.92, 0.92),
    ("random_diag", False, 0.1): (0.85, 0.86),
    ("random_diag", True, 0.1): (0.84, 0.85),
}


def synthetic_results(final=FINAL, epochs: int = 3) -> list[dict]:
    results = []
    for seed in (1, 0):  # out of order on purpose
        for (kind, train_a, dropout), accs in final.items():
            acc = accs[seed]
            history = [
                {"epoch": e + 1, "train_loss": 1.0 / (e + 1), "train_acc": acc, "test_acc": acc - 0.1 * (epochs - 1 - e), "time": float(e)}
                for e in range(epochs)
            ]
            results.append(
                {
                    "kind": kind, "train_A": train_a, "dropout": dropout, "seed": seed, "n_params": 100,
                    "history": history, "final_test_acc": acc, "final_train_acc": min(1.0, acc + 0.05),
                }
            )  # fmt: skip
    return results


def write_ablation(path: Path, results=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"command": "python -m s4lite.ablation", "device_kind": "cpu"}))
    (path / "results.json").write_text(json.dumps(synthetic_results() if results is None else results))
    return path


def test_load_ablation_and_find(tmp_path):
    write_ablation(tmp_path / "artifacts" / "ablations")
    run = va.load_ablation(tmp_path / "artifacts" / "ablations")
    assert run["config"]["device_kind"] == "cpu" and len(run["results"]) == 16
    assert va.find_ablation(start=tmp_path / "artifacts") == tmp_path / "artifacts" / "ablations"
    assert va.find_ablation("nothing/here", start=tmp_path) is None


def test_load_ablation_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        va.load_ablation(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        va.load_ablation(tmp_path / "a")
    bad = synthetic_results()
    del bad[3]["history"]
    with pytest.raises(ValueError, match=r"results\[3\]"):
        va.load_ablation(write_ablation(tmp_path / "b", bad))
    bad = synthetic_results()
    bad[0]["kind"] = "legs"
    with pytest.raises(ValueError, match="kind"):
        va.check_results(bad)
    with pytest.raises(ValueError, match="results"):
        va.check_results([])


def test_summary_table():
    rows = va.summary_table(synthetic_results())
    keys = [(r["kind"], r["train_A"], r["dropout"]) for r in rows]
    assert keys == [  # kinds in KINDS order, then dropout, frozen before trained
        ("hippo", False, 0.0), ("hippo", True, 0.0), ("hippo", False, 0.1), ("hippo", True, 0.1),
        ("random_diag", False, 0.0), ("random_diag", True, 0.0), ("random_diag", False, 0.1), ("random_diag", True, 0.1),
    ]  # fmt: skip
    for r in rows:
        a, b = FINAL[(r["kind"], r["train_A"], r["dropout"])]
        assert r["seeds"] == [0, 1]
        np.testing.assert_allclose(r["values"], [a, b], rtol=0, atol=1e-15)
        assert r["mean"] == pytest.approx((a + b) / 2, abs=1e-15)
        assert r["spread"] == pytest.approx(abs(a - b) / 2, abs=1e-15)
        assert r["std"] == pytest.approx(r["spread"], abs=1e-15)  # two seeds: std (ddof 0) = half the range
        assert (r["min"], r["max"]) == (min(a, b), max(a, b))
    train = va.summary_table(synthetic_results(), key="final_train_acc")
    assert train[0]["mean"] == pytest.approx(0.96, abs=1e-12)
    with pytest.raises(ValueError, match="key"):
        va.summary_table(synthetic_results(), key="test_acc")


def test_training_effect():
    rows = {(r["kind"], r["dropout"]): r for r in va.training_effect(synthetic_results())}
    assert list(rows) == [("hippo", 0.0), ("hippo", 0.1), ("random_diag", 0.0), ("random_diag", 0.1)]
    h = rows[("hippo", 0.0)]  # +0.05 and +0.04: larger than the seed spreads (0.01, 0.005), same sign
    assert h["delta"] == pytest.approx(0.045, abs=1e-12)
    np.testing.assert_allclose(h["paired"], [0.05, 0.04], atol=1e-12)
    assert h["noise"] == pytest.approx(0.01, abs=1e-12) and h["clear"]
    d = rows[("random_diag", 0.0)]  # +0.02 and −0.01: mixed signs, within the seed spread 0.05
    assert d["delta"] == pytest.approx(0.005, abs=1e-12) and d["noise"] == pytest.approx(0.05, abs=1e-12)
    assert not d["clear"]
    z = rows[("hippo", 0.1)]  # +0.01 twice, no spread at all: clear
    assert z["clear"] and z["noise"] == 0.0
    n = rows[("random_diag", 0.1)]  # −0.01 twice: a clear *negative* effect
    assert n["delta"] == pytest.approx(-0.01, abs=1e-12) and n["clear"]


def test_training_effect_needs_the_same_seeds():
    results = [r for r in synthetic_results() if not (r["kind"] == "hippo" and r["train_A"] and r["dropout"] == 0.0 and r["seed"] == 1)]
    with pytest.raises(ValueError, match="seeds"):
        va.training_effect(results)


def test_best_cells_and_noise():
    best = va.best_cells(synthetic_results())
    assert (best["hippo"]["train_A"], best["hippo"]["dropout"]) == (True, 0.0)
    assert best["random_diag"]["mean"] == pytest.approx(0.855, abs=1e-12)
    assert va.accuracy_noise(0.98, 10_000) == pytest.approx(math.sqrt(0.98 * 0.02 / 10_000), rel=1e-12)
    assert va.accuracy_noise(1.0, 5) == 0.0
    with pytest.raises(ValueError, match="accuracy"):
        va.accuracy_noise(1.5, 10)
    with pytest.raises(ValueError, match="n_test"):
        va.accuracy_noise(0.5, 0)


def test_curves_trim_runs_cut_short():
    results = synthetic_results()
    results[0]["history"] = results[0]["history"][:2]  # seed 1's first cell stopped after 2 epochs
    c = va.curves(results)[(results[0]["kind"], results[0]["train_A"], results[0]["dropout"])]
    assert c["epoch"].tolist() == [1, 2] and c["values"].shape == (2, 2)
    with pytest.raises(ValueError, match="key"):
        va.curves(results, key="final_test_acc")


def test_ablation_figures():
    fig = va.plot_ablation_curves(synthetic_results())
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # one panel per dropout rate
    assert [ax.get_title() for ax in fig.axes] == ["dropout 0", "dropout 0.1"]
    assert len(fig.axes[0].get_lines()) == 4  # 2 kinds × frozen/trained
    y = fig.axes[0].get_lines()[0].get_ydata()  # hippo frozen: error 100 (1 − acc), mean over the seeds
    np.testing.assert_allclose(y[-1], 100 * (1 - 0.91), rtol=1e-12)
    fig = va.plot_final_accuracy(synthetic_results())
    scatters = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert len(scatters) == 8  # one scatter (of the two seeds) per cell
    np.testing.assert_allclose(sorted(scatters[0].get_offsets()[:, 1]), [90.0, 92.0])  # hippo frozen, dropout 0


def test_spectrum_of_each_kind():
    N = 8
    lam = va.spectrum(init_ssm(jax.random.PRNGKey(0), "hippo", 3, N), channel=2)
    Lambda = hippo_half(N)[0]
    assert lam.shape == (N,)
    np.testing.assert_allclose(lam, np.concatenate([Lambda, Lambda.conj()]), rtol=1e-6)
    dense = init_ssm(jax.random.PRNGKey(0), "random_dense", 3, N)
    ev = va.spectrum(dense)
    np.testing.assert_allclose(np.sort_complex(ev), np.sort_complex(np.linalg.eigvals(np.asarray(dense["A"]))), rtol=1e-10)
    with pytest.raises(ValueError, match="channel"):
        va.spectrum(init_ssm(jax.random.PRNGKey(0), "random_diag", 3, N), channel=3)
    with pytest.raises(ValueError, match="ssm"):
        va.spectrum({"B": np.zeros(3)})
    fig = va.plot_spectra({"hippo": lam, "random_dense": ev})
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "HiPPO"
    with pytest.raises(ValueError, match="spectra"):
        va.plot_spectra({})


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------


def synthetic_history(epochs: int = 4) -> list[dict]:
    return [
        {"epoch": e + 1, "train_nll": 1.0 - 0.1 * e, "test_nll": 0.9 - 0.05 * e + (0.1 if e == 2 else 0.0), "train_time": 2.0 * (e + 1), "test_bits_per_pixel": (0.9 - 0.05 * e) / math.log(2)}
        for e in range(epochs)
    ]


def write_generation(path: Path, with_training: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    metrics = {
        "history": synthetic_history(), "final_test_nll_nats": 0.75, "final_test_bits_per_pixel": 0.75 / math.log(2),
        "rnn_vs_cnn_max_abs_diff": 1e-4, "rnn_vs_cnn_max_abs_logit": 30.0, "rnn_pixels_per_s": 1e6,
        "conv_pixels_per_s": 1e4, "speed_batch": 4, "conv_speed_steps": 2, "train_time_s": 8.0,
    }  # fmt: skip
    (path / "config.json").write_text(json.dumps({"command": "python -m s4lite.generation", "epochs": 10}))
    (path / "metrics.json").write_text(json.dumps(metrics))
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (3, 784), dtype=np.uint8)
    np.savez_compressed(path / "samples.npz", originals=digits, completions=digits, unconditional=digits[::-1], prefix_length=np.asarray(392))
    if with_training:
        (path / "training").mkdir()
        (path / "training" / "config.json").write_text(json.dumps({"epochs": 200}))
        (path / "training" / "metrics.json").write_text(json.dumps({**metrics, "rnn_vs_cnn_max_abs_diff": 0.9}))
    return path


def test_load_generation(tmp_path):
    run = vg.load_generation(write_generation(tmp_path / "artifacts" / "generation"))
    assert run["samples"]["prefix_length"] == 392 and isinstance(run["samples"]["prefix_length"], int)
    assert run["samples"]["originals"].shape == (3, 784)
    assert run["training"]["config"]["epochs"] == 200 and run["training"]["metrics"]["rnn_vs_cnn_max_abs_diff"] == 0.9
    assert vg.find_generation(start=tmp_path) == tmp_path / "artifacts" / "generation"
    assert vg.load_generation(write_generation(tmp_path / "plain", with_training=False))["training"] is None


def test_load_generation_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        vg.load_generation(tmp_path / "missing")
    p = write_generation(tmp_path / "g", with_training=False)
    m = json.loads((p / "metrics.json").read_text())
    del m["conv_pixels_per_s"]
    (p / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="conv_pixels_per_s"):
        vg.load_generation(p)


def test_history_columns_and_bits():
    cols = vg.history_columns(synthetic_history())
    assert cols["epoch"].tolist() == [1, 2, 3, 4] and cols["test_nll"].dtype == np.float64
    with pytest.raises(ValueError, match="history"):
        vg.history_columns([])
    with pytest.raises(ValueError, match=r"history\[1\]"):
        vg.history_columns([synthetic_history()[0], {"epoch": 2}])
    with pytest.raises(ValueError, match="increasing"):
        vg.history_columns(synthetic_history()[::-1])
    assert vg.bits_per_pixel(math.log(256)) == pytest.approx(8.0, rel=1e-15)
    np.testing.assert_allclose(vg.bits_per_pixel([math.log(2), 0.0]), [1.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize(
    "p, xs, ys",
    [
        (0, [-0.5, 27.5], [-0.5, -0.5]),  # nothing given: the line above the first row
        (392, [-0.5, 27.5], [13.5, 13.5]),  # 14 full rows
        (784, [-0.5, 27.5], [27.5, 27.5]),
        (30, [-0.5, 1.5, 1.5, 27.5], [1.5, 1.5, 0.5, 0.5]),  # row 0 and 2 pixels of row 1
    ],
)
def test_prefix_boundary(p, xs, ys):
    bx, by = vg.prefix_boundary(p)
    np.testing.assert_array_equal(bx, xs)
    np.testing.assert_array_equal(by, ys)


def test_prefix_boundary_rejects_bad_input():
    with pytest.raises(ValueError, match="prefix_length"):
        vg.prefix_boundary(785)
    with pytest.raises(ValueError, match="side"):
        vg.prefix_boundary(3, side=0)


def test_plot_digit_grid():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (3, 784)), rng.integers(0, 256, (2, 784))
    fig = vg.plot_digit_grid({"original": a, "completed": b}, prefix_length=392, marked=("completed",), title="t")
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel() == "original" and axes[1, 0].get_ylabel() == "completed"
    assert len(axes[0, 0].get_lines()) == 0 and len(axes[1, 0].get_lines()) == 1  # the boundary only where marked
    np.testing.assert_array_equal(axes[0, 1].get_images()[0].get_array(), a[1].reshape(28, 28))
    assert not axes[1, 2].axison  # the shorter row leaves its last cell empty
    with pytest.raises(ValueError, match="marked"):
        vg.plot_digit_grid({"a": a}, prefix_length=3, marked=("b",))
    with pytest.raises(ValueError, match="prefix_length"):
        vg.plot_digit_grid({"a": a}, marked=("a",))
    with pytest.raises(ValueError, match=r"rows\['a'\]"):
        vg.plot_digit_grid({"a": a[:, :100]})


def test_plot_nll_curve_and_speed():
    fig = vg.plot_nll_curve(synthetic_history(), scheduled_epochs=10)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 10.0) and ax.get_ylabel() == "NLL per pixel (nats)"
    assert "epoch 4" in ax.get_legend().get_texts()[2].get_text()  # the lowest test NLL (0.75 at epoch 4)
    with pytest.raises(ValueError, match="scheduled_epochs"):
        vg.plot_nll_curve(synthetic_history(), scheduled_epochs=2)
    fig = vg.plot_speed({"RNN": 2e6, "convolution": 1e4}, title="batch 4")
    assert fig.axes[0].get_yscale() == "log" and "200×" in fig.axes[0].get_title()
    assert [p.get_height() for p in fig.axes[0].patches] == [2e6, 1e4]
    with pytest.raises(ValueError, match="rates"):
        vg.plot_speed({"RNN": 0.0})


def test_rnn_outputs_equal_sequence_outputs_float64():
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init_model(jax.random.PRNGKey(0), 1, 256, d_model=8, n_layers=1, N=4))
    pixels = jnp.asarray(np.random.default_rng(2).integers(0, 256, (2, 20)))
    x = jnp.asarray(shift_right(pixels), jnp.float64)  # the same inputs for both views
    forms, _ = init_recurrent(params, 20)
    rnn = jax.jit(vg.rnn_outputs)(params, forms, x)
    cnn = jax.jit(sequence_outputs)(params, x)
    err = float(jnp.max(jnp.abs(rnn - cnn)) / jnp.max(jnp.abs(cnn)))
    assert rnn.shape == (2, 20, 256) and err < 1e-12, err
    with pytest.raises(ValueError, match="x"):
        vg.rnn_outputs(params, forms, x[..., 0])


def test_best_seconds():
    calls = []
    t = vg.best_seconds(lambda: calls.append(1) or jnp.zeros(3), repeats=4)
    assert len(calls) == 4 and 0 <= t < 1.0
    with pytest.raises(ValueError, match="repeats"):
        vg.best_seconds(lambda: None, repeats=0)
