"""Tests for ``s4lite.viz.training``: the helpers of chapters 8–10 (Part II).

Runs are small synthetic directories written to ``tmp_path`` in the format of ``s4lite.train``;
float64 is on (conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from s4lite.model import count_params, init_model  # noqa: E402
from s4lite.train import build_parser, make_optimizer, param_labels  # noqa: E402
from s4lite.viz import training as vt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


ACC = [0.5, 0.95, 0.991, 0.993, 0.992]
WALL = [10.0, 20.0, 30.0, 40.0, 50.0]


def write_run(path: Path, acc=ACC, with_kernels: bool = True, layers: int = 2, H: int = 3, N2: int = 2) -> Path:
    """A fake run directory: 5 epochs, 2 steps of 4 per epoch, epoch 1 slow (compilation)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"epochs": len(acc), "batch-size": 4, "steps_per_epoch": 2, "n_params": 10, "device": "cpu:0"}
    (path / "config.json").write_text(json.dumps(config))
    (path / "summary.json").write_text(json.dumps({"final_test_acc": acc[-1]}))
    rows = []
    train_time = 0.0
    for e, a in enumerate(acc):
        epoch_time = 8.0 if e == 0 else 2.0 + 0.1 * e
        train_time += epoch_time
        rows.append(
            {
                "epoch": e + 1,
                "train_loss": 1.0 / (e + 1),
                "train_acc": min(a + 0.001, 1.0),
                "test_loss": 1.5 / (e + 1),
                "test_acc": a,
                "epoch_time": epoch_time,
                "samples_per_s": 8 / epoch_time,
                "train_time": train_time,
                "wall_time": WALL[e],
            }
        )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if with_kernels:
        rng = np.random.default_rng(0)
        arrays = {}
        for w, scale in (("init", 1.0), ("final", 2.0)):
            arrays[f"kernels_{w}"] = rng.standard_normal((layers, H, 784)).astype(np.float32)
            arrays[f"step_{w}"] = np.full((layers, H), 0.01 * scale, np.float32)
            arrays[f"Lambda_{w}"] = np.full((layers, H, N2), -0.5 + 1j * scale, np.complex64)
        np.savez(path / "kernels.npz", **arrays)
    return path


def test_load_run_reads_every_file(tmp_path: Path) -> None:
    run = vt.load_run(write_run(tmp_path / "run"))
    assert run["config"]["steps_per_epoch"] == 2 and run["summary"]["final_test_acc"] == ACC[-1]
    assert run["metrics"]["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert run["metrics"]["test_acc"].tolist() == ACC
    assert run["kernels"]["kernels_init"].shape == (2, 3, 784)
    assert vt.load_run(write_run(tmp_path / "nok", with_kernels=False))["kernels"] is None


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path: expected a run directory"):
        vt.load_run(tmp_path / "missing")
    run = write_run(tmp_path / "run")
    (run / "summary.json").unlink()
    with pytest.raises(ValueError, match="has no summary.json"):
        vt.load_run(run)
    run = write_run(tmp_path / "bad")
    (run / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        vt.load_run(run)
    run = write_run(tmp_path / "badnpz")
    np.savez(run / "kernels.npz", kernels_init=np.zeros((1, 1, 784)))
    with pytest.raises(ValueError, match="kernels.npz lacks"):
        vt.load_run(run)
    with pytest.raises(ValueError, match=r"rows\[0\]: missing keys"):
        vt.metrics_columns([{"epoch": 1}])
    with pytest.raises(ValueError, match="increasing epochs"):
        vt.metrics_columns([dict.fromkeys(vt.METRIC_KEYS, 1.0), dict.fromkeys(vt.METRIC_KEYS, 1.0)])


def test_find_run(tmp_path: Path) -> None:
    write_run(tmp_path / "artifacts" / "smnist")
    deep = tmp_path / "notebooks" / "sub"
    deep.mkdir(parents=True)
    assert vt.find_run("artifacts/smnist", start=deep) == tmp_path / "artifacts" / "smnist"
    assert vt.find_run("artifacts/none", start=deep) is None


def test_run_facts_recomputes_the_headline_numbers(tmp_path: Path) -> None:
    facts = vt.run_facts(vt.load_run(write_run(tmp_path / "run")))
    assert facts["epochs"] == 5 and facts["final_test_acc"] == 0.992
    assert facts["best_test_acc"] == 0.993 and facts["best_epoch"] == 4
    assert facts["epoch_to_99"] == 3
    assert facts["time_to_99_train_s"] == pytest.approx(8.0 + 2.1 + 2.2, abs=1e-12)
    assert facts["time_to_99_wall_s"] == 30.0
    # epochs 2..5 run at 8/2.1, 8/2.2, 8/2.3, 8/2.4 samples/s; upper median of four = third smallest
    assert facts["median_samples_per_s"] == pytest.approx(8 / 2.2, rel=1e-14)
    assert facts["first_epoch_s"] == 8.0 and facts["samples_seen"] == 2 * 4 * 5
    never = vt.run_facts(vt.load_run(write_run(tmp_path / "never", acc=[0.1, 0.2, 0.3, 0.4, 0.5])))
    assert never["epoch_to_99"] is None and never["time_to_99_wall_s"] is None


def test_run_facts_agree_with_train_summarize(tmp_path: Path) -> None:
    from s4lite.train import summarize

    run = vt.load_run(write_run(tmp_path / "run"))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ref = summarize(rows, run["config"])
    facts = vt.run_facts(run)
    for key in ("final_test_acc", "best_test_acc", "best_epoch", "epoch_to_99", "time_to_99_train_s",
                "time_to_99_wall_s", "median_samples_per_s", "train_time_s", "wall_time_s"):
        assert facts[key] == ref[key], key


def test_first_reaching_and_accuracy_within(tmp_path: Path) -> None:
    m = vt.load_run(write_run(tmp_path / "run"))["metrics"]
    assert vt.first_reaching(m, 0.99) == 2 and vt.first_reaching(m, 0.999) is None
    assert vt.first_reaching(m, 0.4, key="train_loss") == 0
    assert vt.accuracy_within(m, 35.0) == (3, 0.991)
    assert vt.accuracy_within(m, 5.0) is None
    assert vt.accuracy_within(m, 1e9, clock="train_time") == (5, 0.992)
    with pytest.raises(ValueError, match="key: expected one of"):
        vt.first_reaching(m, 0.5, key="nope")
    with pytest.raises(ValueError, match="clock: expected one of"):
        vt.accuracy_within(m, 10.0, clock="cpu_time")
    with pytest.raises(ValueError, match="seconds: expected a number > 0"):
        vt.accuracy_within(m, -1.0)


def test_expected_seconds() -> None:
    assert vt.expected_seconds(60_000, 10, 20_000.0) == 30.0
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        vt.expected_seconds(60_000, 0, 1.0)
    with pytest.raises(ValueError, match="samples_per_s: expected a number > 0"):
        vt.expected_seconds(60_000, 1, 0.0)


def test_plot_curves(tmp_path: Path) -> None:
    m = vt.load_run(write_run(tmp_path / "run"))["metrics"]
    for x in ("epoch", "train_time", "wall_time"):
        fig = vt.plot_curves(m, x=x)
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        line = fig.axes[1].get_lines()[1]  # test error rate
        np.testing.assert_allclose(line.get_ydata(), 1 - np.array(ACC), rtol=1e-12)
        np.testing.assert_allclose(line.get_xdata(), m[x])
    with pytest.raises(ValueError, match="x: expected"):
        vt.plot_curves(m, x="step")


def test_param_table_and_counts() -> None:
    H, N, layers = 4, 6, 2
    params = init_model(jax.random.PRNGKey(0), 1, 10, H, layers, N)
    table = dict((name, (shape, n)) for name, shape, n in vt.param_table(params))
    assert table["layers[1].s4.Ct"] == ((H, N // 2, 2), H * N)
    assert table["encoder.W"] == ((1, H), H)
    assert sum(n for _, n in table.values()) == count_params(params)
    counts = vt.label_counts(param_labels(params), params)
    assert counts["ssm"]["keys"] == ["B", "P", "im", "log_neg_re", "log_step"]
    # per layer: Re/Im of Λ (N/2 each), P and B (N numbers each), log Δ (1), for each of H channels
    assert counts["ssm"]["numbers"] == layers * H * (3 * N + 1)
    assert counts["ssm"]["arrays"] == 5 * layers
    assert counts["ssm"]["numbers"] + counts["other"]["numbers"] == count_params(params)
    with pytest.raises(ValueError, match="labels: expected one label per parameter"):
        vt.label_counts(["ssm"], params)
    with pytest.raises(ValueError, match="params: expected a pytree"):
        vt.param_table({})


def test_measured_learning_rates_match_the_optax_schedule() -> None:
    # a minimal pytree with the model's key structure: one SSM leaf and two ordinary ones
    params = {"layers": [{"s4": {"log_step": np.zeros(2), "Ct": np.zeros((2, 1, 2))}}], "head": {"W": np.zeros((2, 3))}}
    total = 200
    args = build_parser().parse_args(["--lr", "4e-3", "--ssm-lr", "1e-3", "--warmup-frac", "0.1"])
    opt = make_optimizer(args, total, params)
    lrs = vt.measured_learning_rates(opt, param_labels(params), params, total)
    assert set(lrs) == {"ssm", "other"}
    for label, peak in (("other", 4e-3), ("ssm", 1e-3)):
        ref = optax.warmup_cosine_decay_schedule(0.0, peak, 20, total, 0.0)
        expected = np.array([float(ref(i)) for i in range(total)])
        err = np.abs(lrs[label] - expected).max() / peak
        assert err < 1e-5, (label, err)  # float32 Adam arithmetic
    assert int(np.argmax(lrs["other"])) == 20
    fig = vt.plot_learning_rates(lrs, steps_per_epoch=50)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="n_steps: expected an integer >= 1"):
        vt.measured_learning_rates(opt, param_labels(params), params, 0)


def test_digit_and_augmented_figures() -> None:
    img = np.arange(784.0).reshape(28, 28)
    fig = vt.plot_digit_sequence(img, label=3)
    np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_ydata(), np.arange(784.0))  # row-major
    with pytest.raises(ValueError, match="image: expected a 28 × 28 image"):
        vt.plot_digit_sequence(np.zeros((27, 28)))
    orig = np.zeros((3, 28, 28))
    fig = vt.plot_augmented(orig, np.ones((2, 3, 28, 28)), labels=[1, 2, 3])
    assert len(fig.axes) == 9
    with pytest.raises(ValueError, match="augmented: expected shape"):
        vt.plot_augmented(orig, np.ones((2, 4, 28, 28)))


def test_kernel_image_layout() -> None:
    K = np.arange(784.0)
    img = vt.kernel_image(K)
    assert img[0, 5] == 5 and img[2, 3] == 2 * 28 + 3  # lag j → (j // 28, j % 28)
    assert vt.kernel_image(np.zeros((2, 3, 16)), side=4).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="K: expected a last axis of length"):
        vt.kernel_image(np.zeros(100))


def test_recent_energy_fraction() -> None:
    K = np.zeros((2, 784))
    K[0, :28] = 1.0
    K[1, :28], K[1, 28:56] = 1.0, np.sqrt(3.0)  # energy 28 in the first row, 84 in the second
    np.testing.assert_allclose(vt.recent_energy_fraction(K), [1.0, 0.25], rtol=1e-14)
    np.testing.assert_allclose(vt.recent_energy_fraction(K, n=784), [1.0, 1.0], rtol=1e-14)
    with pytest.raises(ValueError, match="n: expected"):
        vt.recent_energy_fraction(K, n=0)
    with pytest.raises(ValueError, match="nonzero energy"):
        vt.recent_energy_fraction(np.zeros((1, 784)))


def test_kernel_figures(tmp_path: Path) -> None:
    k = vt.load_run(write_run(tmp_path / "run"))["kernels"]
    fig = vt.kernel_grid(k["kernels_init"][0], k["kernels_final"][0], [0, 2], title="layer 1")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 4
    for im in images:
        lo, hi = im.get_clim()
        assert hi > 0 and lo == -hi  # symmetric limits
    # axes are row-major (before: images 0, 1; after: 2, 3): one channel's two images share limits
    assert images[0].get_clim() == images[2].get_clim() and images[1].get_clim() == images[3].get_clim()
    lim0 = max(np.abs(k["kernels_init"][0, 0]).max(), np.abs(k["kernels_final"][0, 0]).max())
    assert images[0].get_clim()[1] == pytest.approx(lim0, rel=1e-12)
    with pytest.raises(ValueError, match="channels: expected indices"):
        vt.kernel_grid(k["kernels_init"][0], k["kernels_final"][0], [3])
    fig = vt.plot_kernels(k["kernels_init"][0], k["step_init"][0], [0, 1])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="K, step: expected shapes"):
        vt.plot_kernels(k["kernels_init"][0], k["step_init"], [0])
    fig = vt.plot_steps(k["step_init"], k["step_final"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="step sizes must be > 0"):
        vt.plot_steps(-k["step_init"], k["step_final"])
    fig = vt.plot_eigenvalues(k["Lambda_init"], k["Lambda_final"], layers=(0, -1))
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="layers: expected indices"):
        vt.plot_eigenvalues(k["Lambda_init"], k["Lambda_final"], layers=(5,))


def test_ssm_change_stats(tmp_path: Path) -> None:
    k = vt.load_run(write_run(tmp_path / "run"))["kernels"]
    rows = vt.ssm_change_stats(k)
    assert [r["layer"] for r in rows] == [1, 2]
    r = rows[0]
    assert r["median_step_init"] == pytest.approx(0.01, rel=1e-6)
    assert r["median_abs_log_step_change"] == pytest.approx(np.log(2.0), rel=1e-6)
    # Λ from −0.5 + 1i to −0.5 + 2i: |ΔΛ| / |Λ| = 1 / √1.25
    assert r["median_rel_lambda_change"] == pytest.approx(1 / np.sqrt(1.25), rel=1e-6)
    assert r["median_abs_re_change"] == 0.0 and r["max_abs_re_change"] == 0.0
    assert r["median_rel_im_change"] == pytest.approx(1.0, rel=1e-6)
    assert r["median_rel_im_change_lowest"] == pytest.approx(1.0, rel=1e-6)
    Ki, Kf = k["kernels_init"][0].astype(float), k["kernels_final"][0].astype(float)
    ref = np.median(np.linalg.norm(Kf - Ki, axis=1) / np.linalg.norm(Ki, axis=1))
    assert r["median_rel_kernel_change"] == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="kernels: missing arrays"):
        vt.ssm_change_stats({"kernels_init": Ki})


def test_markdown_table() -> None:
    text = vt.markdown_table(["a", "b"], [[1, 2.5], ["x", "y"]])
    assert text.splitlines() == ["| a | b |", "|:--|--:|", "| 1 | 2.5 |", "| x | y |"]
    with pytest.raises(ValueError, match=r"rows\[0\]: expected 2 cells"):
        vt.markdown_table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="align: expected"):
        vt.markdown_table(["a"], [[1]], align="x")


def test_step_variant_rows() -> None:
    bench = {
        "conv_fwd_bwd_ms": {"swap_n1568": 6.0, "axis_n1568": 6.1, "swap_n2048": 5.0, "toeplitz_f32": 4.0,
                            "toeplitz_f32_highest": 9.0},
        "step_ms": {"2L_threefry2x32": 9.0, "2L_rbg": 9.5, "toeplitz_threefry2x32": 8.0, "2048_threefry2x32": 8.5},
    }
    rows = vt.step_variant_rows(bench)
    assert rows["conv"] == [("Toeplitz matmul (default precision)", 4.0), ("FFT, length 2048", 5.0),
                            ("FFT, length 1568", 6.0), ("Toeplitz matmul (highest precision)", 9.0)]
    assert rows["step"] == [("Toeplitz matmul", 8.0), ("FFT, length 2048", 8.5), ("FFT, length 2L", 9.0)]
    with pytest.raises(ValueError, match="bench: expected a 'conv_fwd_bwd_ms' mapping"):
        vt.step_variant_rows({})


def test_energy_profile_and_figures(tmp_path: Path) -> None:
    K = np.zeros((2, 3, 784))
    K[:, 0, 0] = 2.0  # all energy at lag 0
    K[:, 1, :2] = 1.0  # half at lag 0, half at lag 1
    K[:, 2, 5] = -3.0  # all at lag 5
    prof = vt.energy_profile(K)
    assert prof.shape == (2, 784)
    np.testing.assert_allclose(prof[0, :6], [0.5, 1 / 6, 0, 0, 0, 1 / 3], rtol=1e-14, atol=0)
    np.testing.assert_allclose(prof.sum(-1), 1.0, rtol=1e-14)
    with pytest.raises(ValueError, match="K: expected shape"):
        vt.energy_profile(np.ones(5))
    k = vt.load_run(write_run(tmp_path / "run"))["kernels"]
    fig = vt.plot_energy_profiles(k["kernels_init"], k["kernels_final"], max_lag=200)
    assert len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[0].get_lines()[-1].get_ydata(), vt.energy_profile(k["kernels_final"])[0, :200])
    fig = vt.plot_decay_rates(k["Lambda_init"], k["Lambda_final"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="layers: expected indices"):
        vt.plot_decay_rates(k["Lambda_init"], k["Lambda_final"], layers=())


def test_same_column_ratio() -> None:
    rng = np.random.default_rng(1)
    K = 0.1 * rng.standard_normal((2, 784))
    K[1, 28 * np.arange(1, 6)] = 3.0  # spikes at the same column 1..5 rows back
    ratio = vt.same_column_ratio(K)
    assert ratio[1] > 50 * ratio[0]
    flat = np.ones(784)
    assert vt.same_column_ratio(flat) == pytest.approx(1.0, rel=1e-14)
    with pytest.raises(ValueError, match="offsets: expected"):
        vt.same_column_ratio(flat, offsets=(0,))
    with pytest.raises(ValueError, match="rows: expected"):
        vt.same_column_ratio(flat, rows=30)


def test_energy_extent() -> None:
    K = np.zeros((3, 100))
    K[0, 0] = 1.0  # everything at lag 0
    K[1, :10] = 1.0  # uniform over 10 lags: 9 of them hold 90 %
    K[2, [0, 50]] = [1.0, 3.0]  # 10 % at lag 0, 90 % at lag 50
    assert vt.energy_extent(K).tolist() == [1, 9, 51]
    assert vt.energy_extent(K, q=0.05).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="q: expected"):
        vt.energy_extent(K, q=0.0)
    with pytest.raises(ValueError, match="nonzero energy"):
        vt.energy_extent(np.zeros((1, 5)))


def test_kernel_grid_scales() -> None:
    K = np.zeros((1, 784))
    K[0, 0], K[0, 100] = -2.0, 0.5
    lin = vt.kernel_grid(K, 0.5 * K, [0], linthresh=None)
    im = lin.axes[0].get_images()[0]
    assert isinstance(im.norm, matplotlib.colors.Normalize) and not isinstance(im.norm, matplotlib.colors.SymLogNorm)
    assert im.get_clim() == (-2.0, 2.0)
    log = vt.kernel_grid(K, 0.5 * K, [0])
    norm = log.axes[0].get_images()[0].norm
    assert isinstance(norm, matplotlib.colors.SymLogNorm) and norm.linthresh == pytest.approx(0.02)
    with pytest.raises(ValueError, match="linthresh: expected"):
        vt.kernel_grid(K, K, [0], linthresh=2.0)


def test_ssm_change_stats_lambda_parts() -> None:
    Li = np.array([[[-0.5 + 10j, -0.5 + 1j]]])  # (layers 1, H 1, N/2 2); the lowest frequency is mode 1
    Lf = np.array([[[-0.5 + 10j, -0.4 + 1.5j]]])
    K = np.ones((1, 1, 784))
    row = vt.ssm_change_stats({"kernels_init": K, "kernels_final": K, "step_init": np.ones((1, 1)),
                               "step_final": np.ones((1, 1)), "Lambda_init": Li, "Lambda_final": Lf})[0]
    assert row["median_abs_re_change"] == pytest.approx(0.05, rel=1e-12)
    assert row["max_abs_re_change"] == pytest.approx(0.1, rel=1e-12)
    assert row["median_rel_im_change_lowest"] == pytest.approx(0.5, rel=1e-12)
    assert row["median_rel_im_change"] == pytest.approx(0.25, rel=1e-12)
    assert row["median_rel_kernel_change"] == 0.0 and row["median_abs_log_step_change"] == 0.0


def _with_config(path: Path, **entries) -> Path:
    """Add entries to the fake run's config.json (the options a real run records)."""
    config = json.loads((path / "config.json").read_text())
    config.update(entries)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_run_settings_reads_and_resolves_options() -> None:
    new = {"conv": "toeplitz_bf16", "epochs": 500, "kernel": "auto", "kernel_resolved": "pallas", "ema": 0.999}
    assert vt.run_settings(new) == {"conv": "toeplitz_bf16", "epochs": 500, "kernel": "pallas", "ema": 0.999,
                                    "from_absent": []}
    # "auto" without a resolved name: decided by the recorded platform
    assert vt.run_settings({"conv": "fft", "epochs": 1, "kernel": "auto", "ema": 0.0, "platform": "gpu"})["kernel"] == "pallas"
    assert vt.run_settings({"conv": "fft", "epochs": 1, "kernel": "auto", "ema": 0.0, "platform": "cpu"})["kernel"] == "xla"
    # a config from before --kernel and --ema: both from ABSENT_OPTIONS, and flagged
    old = vt.run_settings({"conv": "toeplitz", "epochs": 350})
    assert (old["kernel"], old["ema"], old["from_absent"]) == ("xla", 0.0, ["kernel", "ema"])
    assert vt.run_settings({"conv": "fft", "epochs": 2}, absent={"kernel": "pallas", "ema": 0.5})["kernel"] == "pallas"
    with pytest.raises(ValueError, match="config: missing 'conv'"):
        vt.run_settings({"epochs": 3})
    with pytest.raises(ValueError, match="config: no 'ema' recorded"):
        vt.run_settings({"conv": "fft", "epochs": 2, "kernel": "xla"}, absent={})
    with pytest.raises(ValueError, match="config: expected a mapping"):
        vt.run_settings(["conv"])


def test_compare_runs_rows(tmp_path: Path) -> None:
    a = vt.load_run(_with_config(write_run(tmp_path / "a"), conv="toeplitz"))
    b = vt.load_run(_with_config(write_run(tmp_path / "b", acc=[0.6, 0.991, 0.992, 0.993, 0.994]), conv="toeplitz_bf16",
                                 kernel="pallas", ema=0.999))
    rows = vt.compare_runs({"first": a, "second": b})
    assert [r["name"] for r in rows] == ["first", "second"]
    assert (rows[0]["kernel"], rows[0]["ema"], rows[0]["from_absent"]) == ("xla", 0.0, ["kernel", "ema"])
    assert (rows[1]["conv"], rows[1]["kernel"], rows[1]["ema"]) == ("toeplitz_bf16", "pallas", 0.999)
    for row, run in zip(rows, (a, b)):
        facts = vt.run_facts(run)
        assert all(row[k] == v for k, v in facts.items())
    assert rows[0]["epoch_to_99"] == 3 and rows[1]["epoch_to_99"] == 2
    assert rows[1]["final_test_acc"] == 0.994
    with pytest.raises(ValueError, match="runs: expected at least one run"):
        vt.compare_runs({})
    bad = vt.load_run(_with_config(write_run(tmp_path / "bad"), conv="fft", epochs=7))
    with pytest.raises(ValueError, match="config says 7 epochs, metrics hold 5"):
        vt.compare_runs({"bad": bad})


def test_plot_test_error_runs(tmp_path: Path) -> None:
    acc_b = [0.6, 0.991, 0.992, 0.993, 0.994]
    ma = vt.load_run(write_run(tmp_path / "a"))["metrics"]
    mb = vt.load_run(write_run(tmp_path / "b", acc=acc_b))["metrics"]
    fig = vt.plot_test_error_runs({"run A": ma, "run B": mb}, x="train_time")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "training time (s)"
    lines = {l.get_label(): l for l in ax.get_lines()}
    np.testing.assert_allclose(lines["run A"].get_ydata(), 1 - np.array(ACC), rtol=1e-12)
    np.testing.assert_allclose(lines["run B"].get_xdata(), mb["train_time"])
    # the markers sit at each run's first epoch with >= 99 % (index 2 for A, 1 for B)
    dots = [l for l in ax.get_lines() if l.get_marker() == "o"]
    assert [float(d.get_xdata()[0]) for d in dots] == [ma["train_time"][2], mb["train_time"][1]]
    np.testing.assert_allclose([float(d.get_ydata()[0]) for d in dots], [1 - ACC[2], 1 - acc_b[1]], rtol=1e-12)
    assert {"99.0 % accuracy", "99.2 % accuracy"} <= set(lines)
    never = vt.load_run(write_run(tmp_path / "never", acc=[0.1, 0.2, 0.3, 0.4, 0.5]))["metrics"]
    fig = vt.plot_test_error_runs({"never": never}, x="epoch")
    assert not [l for l in fig.axes[0].get_lines() if l.get_marker() == "o"]
    with pytest.raises(ValueError, match="runs: expected at least one run"):
        vt.plot_test_error_runs({})
    with pytest.raises(ValueError, match="x: expected"):
        vt.plot_test_error_runs({"a": ma}, x="step")


def test_measured_learning_rates_from_shapes_only() -> None:
    """The probe needs only the structure and shapes: jax.eval_shape's output gives the same rates."""
    params = init_model(jax.random.PRNGKey(0), 1, 10, 2, 1, 2)
    shapes = jax.eval_shape(lambda k: init_model(k, 1, 10, 2, 1, 2), jax.random.PRNGKey(0))
    args = build_parser().parse_args([])
    total = 50
    ref = vt.measured_learning_rates(make_optimizer(args, total, params), param_labels(params), params, total)
    got = vt.measured_learning_rates(make_optimizer(args, total, shapes), param_labels(shapes), shapes, total)
    assert set(got) == set(ref) == {"ssm", "other"}
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])
