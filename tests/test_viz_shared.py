"""The helpers that several chapters import from ``s4lite.viz`` (each against a hand-computed value)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s4lite.train import build_parser, make_optimizer, param_labels
from s4lite.viz import dplr, hippo, training, views

jax.config.update("jax_enable_x64", True)

ACC = [0.5, 0.95, 0.991, 0.993, 0.992]


def write_run(path: Path, with_kernels: bool = True) -> Path:
    """A fake run directory of 5 epochs, with the old hyphenated option names in its config."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"epochs": len(ACC), "batch-size": 4, "steps_per_epoch": 2, "n_params": 10}
    (path / "config.json").write_text(json.dumps(config))
    (path / "summary.json").write_text(json.dumps({"final_test_acc": ACC[-1]}))
    rows = [
        {k: float(e + 1) for k in training.METRIC_KEYS} | {"epoch": e + 1, "test_acc": a}
        for e, a in enumerate(ACC)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if with_kernels:
        arrays = {f"{k}_{w}": np.zeros((1, 2, 3)) for k in training.KERNEL_KEYS for w in ("init", "final")}
        np.savez(path / "kernels.npz", **arrays)
    return path


def test_rel_err_value_and_errors() -> None:
    assert dplr.rel_err([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25, rel=1e-15)
    with pytest.raises(ValueError, match="x: expected the shape"):
        dplr.rel_err([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="ref: expected a nonzero"):
        dplr.rel_err([1.0], [0.0])


def test_find_artifact_and_find_run_walk_up(tmp_path: Path) -> None:
    write_run(tmp_path / "artifacts" / "smnist")
    deep = tmp_path / "notebooks" / "sub"
    deep.mkdir(parents=True)
    found = dplr.find_artifact("artifacts/smnist/config.json", start=deep)
    assert found.resolve() == (tmp_path / "artifacts" / "smnist" / "config.json").resolve()
    assert dplr.find_artifact("artifacts/none.json", start=deep) is None
    assert training.find_run("artifacts/smnist", start=deep) == tmp_path / "artifacts" / "smnist"
    assert training.find_run("artifacts/none", start=deep) is None


def test_load_run_reads_every_file_and_both_key_spellings(tmp_path: Path) -> None:
    run = training.load_run(write_run(tmp_path / "run"))
    assert run["config"]["batch-size"] == run["config"]["batch_size"] == 4
    assert run["config"]["steps_per_epoch"] == run["config"]["steps-per-epoch"] == 2
    assert run["summary"]["final_test_acc"] == ACC[-1]
    assert run["metrics"]["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert run["metrics"]["test_acc"].tolist() == ACC
    assert run["kernels"]["kernels_init"].shape == (1, 2, 3)
    assert training.load_run(write_run(tmp_path / "nok", with_kernels=False))["kernels"] is None
    # a key recorded under both spellings keeps each recorded value
    both = training.config_both_spellings({"batch-size": 1, "batch_size": 2})
    assert both == {"batch-size": 1, "batch_size": 2}


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path: expected a run directory"):
        training.load_run(tmp_path / "missing")
    run = write_run(tmp_path / "run")
    (run / "summary.json").unlink()
    with pytest.raises(ValueError, match="has no summary.json"):
        training.load_run(run)
    run = write_run(tmp_path / "bad")
    (run / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        training.load_run(run)
    run = write_run(tmp_path / "badnpz")
    np.savez(run / "kernels.npz", kernels_init=np.zeros((1, 1, 784)))
    with pytest.raises(ValueError, match="kernels.npz lacks"):
        training.load_run(run)
    with pytest.raises(ValueError, match=r"rows\[0\]: missing keys"):
        training.metrics_columns([{"epoch": 1}])
    row = dict.fromkeys(training.METRIC_KEYS, 1.0)
    with pytest.raises(ValueError, match="increasing epochs"):
        training.metrics_columns([row, row])


def test_markdown_table() -> None:
    text = training.markdown_table(["a", "b"], [[1, 2.5], ["x", "y"]])
    assert text.splitlines() == ["| a | b |", "|:--|--:|", "| 1 | 2.5 |", "| x | y |"]
    with pytest.raises(ValueError, match=r"rows\[0\]: expected 2 cells"):
        training.markdown_table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="align: expected"):
        training.markdown_table(["a"], [[1]], align="x")


def test_energy_extent() -> None:
    K = np.zeros((3, 100))
    K[0, 0] = 1.0  # everything at lag 0
    K[1, :10] = 1.0  # uniform over 10 lags: 9 of them hold 90 %
    K[2, [0, 50]] = [1.0, 3.0]  # 10 % at lag 0, 90 % at lag 50
    assert training.energy_extent(K).tolist() == [1, 9, 51]
    assert training.energy_extent(K, q=0.05).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="q: expected"):
        training.energy_extent(K, q=0.0)
    with pytest.raises(ValueError, match="nonzero energy"):
        training.energy_extent(np.zeros((1, 5)))


def test_measured_learning_rates_match_the_optax_schedule() -> None:
    params = {
        "layers": [{"s4": {"log_step": np.zeros(2), "Ct": np.zeros((2, 1, 2))}}],
        "head": {"W": np.zeros((2, 3))},
    }
    total = 100
    args = build_parser().parse_args(["--lr", "4e-3", "--ssm-lr", "1e-3", "--warmup-frac", "0.1"])
    opt = make_optimizer(args, total, params)
    lrs = training.measured_learning_rates(opt, param_labels(params), params, total)
    assert set(lrs) == {"ssm", "other"}
    for label, peak in (("other", 4e-3), ("ssm", 1e-3)):
        ref = optax.warmup_cosine_decay_schedule(0.0, peak, 10, total, 0.0)
        expected = np.array([float(ref(i)) for i in range(total)])
        err = np.abs(lrs[label] - expected).max() / peak
        assert err < 1e-5, (label, err)  # float32 Adam arithmetic
    with pytest.raises(ValueError, match="n_steps: expected an integer >= 1"):
        training.measured_learning_rates(opt, param_labels(params), params, 0)


def test_random_stable_matrix_eigenvalue_range() -> None:
    A = hippo.random_stable_matrix(12, -12.0, -1.0, seed=3)
    re = np.linalg.eigvals(A).real
    assert re.min() == pytest.approx(-12.0, abs=1e-9) and re.max() == pytest.approx(-1.0, abs=1e-9)
    with pytest.raises(ValueError, match="re_min"):
        hippo.random_stable_matrix(12, -1.0, 2.0)


def test_time_fn() -> None:
    calls = []

    def f(x):
        calls.append(1)
        return jnp.sum(x)

    assert views.time_fn(f, jnp.ones(4), repeats=3) > 0 and len(calls) == 4  # warm-up + 3
    with pytest.raises(ValueError, match="repeats"):
        views.time_fn(f, jnp.ones(4), repeats=0)
    with pytest.raises(ValueError, match="fn"):
        views.time_fn(None)

