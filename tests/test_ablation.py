"""Tests for ``s4lite.ablation``: the four initializations of A, the dense kernel, freezing A, the runner.

float64 is on (conftest), except inside ``jax.enable_x64(False)`` where the runner is exercised the
way it runs on the GPU (float32, and a faster compilation here).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s4lite import ablation, engine
from s4lite.convolution import kernel_naive
from s4lite.layer import fft_conv
from s4lite.model import classify
from s4lite.discretize import bilinear
from s4lite.layer import hippo_half
from s4lite.model import count_params


DPLR_KINDS = ("hippo", "random_nplr", "random_diag")


def _to64(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)


def _leaf_names(tree) -> dict[str, float]:
    """``"layers/0/ssm/P"`` → value, for every leaf of a pytree of scalars (a mask)."""
    out = {}
    for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out["/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = float(v)
    return out


# --------------------------------------------------------------------------------------------------
# Initializations
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DPLR_KINDS)
def test_init_ssm_dplr_shapes_and_values(kind):
    H, N = 3, 8
    p = ablation.init_ssm(jax.random.PRNGKey(0), kind, H, N)
    shapes = {k: v.shape for k, v in p.items()}
    assert shapes == {
        "log_neg_re": (H, N // 2),
        "im": (H, N // 2),
        "P": (H, N // 2, 2),
        "B": (H, N // 2, 2),
        "Ct": (H, N // 2, 2),
        "log_step": (H,),
        "D": (H,),
    }
    Lambda, P, _ = hippo_half(N)
    if kind == "hippo":
        np.testing.assert_allclose(p["im"][0], Lambda.imag, rtol=1e-6)
        np.testing.assert_allclose(p["P"][1, :, 0] + 1j * p["P"][1, :, 1], P, rtol=1e-5, atol=1e-6)
    else:  # real part −1/2, imaginary parts inside HiPPO's range, Gaussian B
        np.testing.assert_allclose(np.exp(p["log_neg_re"]), 0.5, rtol=1e-6)
        assert np.all(p["im"] >= 0) and np.all(p["im"] <= np.max(Lambda.imag))
        assert not np.allclose(p["im"][0], p["im"][1])  # drawn per channel
    if kind == "random_diag":
        assert np.all(p["P"] == 0)
    if kind == "random_nplr":
        assert np.all(np.abs(p["P"]) > 0)


def test_init_ssm_dense_shapes():
    H, N = 3, 8
    p = ablation.init_ssm(jax.random.PRNGKey(1), "random_dense", H, N)
    assert {k: v.shape for k, v in p.items()} == {"A": (N, N), "B": (H, N), "C": (H, N), "log_step": (H,), "D": (H,)}
    # A = G − I with G Gaussian of variance 1/N (checked on N = 32: 1024 entries, std within 10 %)
    G = np.asarray(ablation.init_ssm(jax.random.PRNGKey(1), "random_dense", 2, 32)["A"], np.float64) + np.eye(32)
    assert abs(G.std() * np.sqrt(32) - 1) < 0.1 and abs(G.mean()) < 0.02


def test_bad_kind_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        ablation.init_ssm(jax.random.PRNGKey(0), "legs", 4, 8)
    with pytest.raises(ValueError, match="kind"):
        ablation.init_ablation_model(jax.random.PRNGKey(0), "random", 8, 1, 4)


def _expected_count(kind: str, d: int = 64, layers: int = 3, N: int = 64) -> int:
    """Parameter count derived by hand: encoder, head, and per block norm + GLU mixing + SSM."""
    if kind == "random_dense":
        ssm = N * N + 2 * d * N + 2 * d  # A shared by the channels; B, C; log_step, D
    else:
        ssm = 2 * d * (N // 2) + 3 * d * (N // 2) * 2 + 2 * d  # log_neg_re, im; P, B, Ct (pairs); log_step, D
    block = 2 * d + (d * 2 * d + 2 * d) + ssm
    return (1 * d + d) + (d * 10 + 10) + layers * block


@pytest.mark.parametrize("kind", ablation.KINDS)
def test_default_model_parameter_count_under_cap(kind):
    shapes = jax.eval_shape(lambda key: ablation.init_ablation_model(key, kind), jax.random.PRNGKey(0))  # no compilation
    n = count_params(shapes)
    assert n == _expected_count(kind)
    assert n <= 100_000


# --------------------------------------------------------------------------------------------------
# The dense kernel
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dense_ssm():
    return _to64(ablation.init_ssm(jax.random.PRNGKey(2), "random_dense", 3, 6))


@pytest.mark.parametrize("L", [1, 100])
def test_kernel_dense_equals_kernel_naive_per_channel(dense_ssm, L):
    p, H = dense_ssm, dense_ssm["B"].shape[0]
    step = jnp.exp(p["log_step"])
    K = ablation.kernel_dense(p["A"], p["B"], p["C"], step, L)
    assert K.shape == (H, L) and K.dtype == jnp.float64
    for h in range(H):
        Ab, Bb = bilinear(p["A"], p["B"][h], step[h])
        ref = kernel_naive(Ab, Bb, p["C"][h], L)
        err = float(jnp.max(jnp.abs(K[h] - ref)) / jnp.max(jnp.abs(ref)))
        assert err < 1e-12, (h, err)
    # the layer's kernel function picks the dense kernel for a layer that stores "A"
    np.testing.assert_array_equal(ablation.ssm_kernel(p, L), K)


# --------------------------------------------------------------------------------------------------
# Freezing A
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ablation.KINDS)
def test_frozen_labels_mark_exactly_the_parameters_of_A(kind):
    params = jax.eval_shape(lambda key: ablation.init_ablation_model(key, kind, d_model=4, n_layers=2, N=4),
                            jax.random.PRNGKey(0))  # fmt: skip
    labels = _leaf_names_str(ablation.labels(False)(params))
    names = ("A",) if kind == "random_dense" else ("log_neg_re", "im", "P")
    assert {k for k, v in labels.items() if v == "frozen"} == {f"layers/{i}/s4/{n}" for i in range(2) for n in names}
    assert "frozen" not in set(_leaf_names_str(ablation.labels(True)(params)).values())
    # B and Δ are SSM parameters (ssm_lr, no weight decay), C and D are not
    assert labels["layers/0/s4/B"] == labels["layers/0/s4/log_step"] == "ssm" and labels["layers/0/s4/D"] == "other"


def _leaf_names_str(tree) -> dict[str, str]:
    out = {}
    for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out["/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = v
    return out


def _loss(params, x, y):
    logits = classify(params, x, jax.random.PRNGKey(2), 0.0, ablation.ablation_backend(fft_conv))
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


_grad = jax.jit(jax.grad(_loss))  # one compilation per kind, shared by the frozen and trained runs


def _train_a_few_steps(kind: str, train_a: bool, steps: int = 2):
    """The update of an ablation cell: the engine's optimizer with the cell's parameter groups."""
    params = _to64(ablation.init_ablation_model(jax.random.PRNGKey(0), kind, d_model=4, n_layers=1, N=4))
    # weight decay on: the A parameters are in the no-decay "ssm" group, so a zero gradient leaves them alone
    cfg = engine.TrainConfig(lr=1e-2, ssm_lr=1e-2, weight_decay=0.1)
    opt = engine.make_optimizer(cfg, steps, params, ablation.labels(train_a)(params))
    state = opt.init(params)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 16, 1))
    y = jnp.array([0, 1, 2, 3])
    start = params

    @jax.jit
    def step(params, state):  # compiled: the optimizer's many small operations, once
        updates, state = opt.update(_grad(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return start, params


@pytest.mark.parametrize("kind", ["random_diag", "random_dense"])
def test_frozen_A_stays_and_trained_A_moves(kind):
    a_keys = ("A",) if kind == "random_dense" else ("log_neg_re", "im")
    start, frozen = _train_a_few_steps(kind, train_a=False)
    _, trained = _train_a_few_steps(kind, train_a=True)
    s0, f0, t0 = start["layers"][0]["s4"], frozen["layers"][0]["s4"], trained["layers"][0]["s4"]
    for k in a_keys + (("P",) if kind == "random_diag" else ()):
        np.testing.assert_array_equal(f0[k], s0[k])  # bit for bit unchanged
    for k in a_keys:
        assert float(jnp.max(jnp.abs(t0[k] - s0[k]))) > 1e-6, k
    if kind == "random_diag":  # A depends on P through PP*, whose gradient vanishes at P = 0: it stays diagonal
        np.testing.assert_array_equal(t0["P"], 0.0)
    # everything else trains in both cases
    for k in ("B", "log_step"):
        assert float(jnp.max(jnp.abs(f0[k] - s0[k]))) > 1e-6, k
    assert float(jnp.max(jnp.abs(frozen["head"]["W"] - start["head"]["W"]))) > 1e-6


def test_the_ablation_model_is_the_deep_model_with_another_ssm():
    """With kind "hippo" the ablation model is s4lite.model's network, parameter for parameter."""
    from s4lite.model import init_model

    a = ablation.init_ablation_model(jax.random.PRNGKey(3), "hippo", 4, 2, 8)
    shapes = jax.tree.map(jnp.shape, init_model(jax.random.PRNGKey(3), 1, 10, 4, 2, 8))
    assert jax.tree.map(jnp.shape, a) == shapes


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------

TINY = ["--sample", "--limit-train", "32", "--limit-test", "16", "--epochs", "2", "--d-model", "4", "--n-layers", "1",
        "--N", "4", "--batch-size", "16", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    args = TINY + ["--kinds", "hippo", "--dropouts", "0", "--train-a", "frozen", "trained", "--seeds", "0", "--out", str(out)]
    with jax.enable_x64(False):
        returned = ablation.main(args)
    return out, returned


def test_main_writes_config_and_results(tiny_run):
    out, returned = tiny_run
    config = json.loads((out / "config.json").read_text())
    results = json.loads((out / "results.json").read_text())
    for k in ("command", "data_source", "device", "jax_version", "commit", "date", "kinds", "seeds", "epochs", "d_model", "N"):
        assert k in config, k
    assert config["command"].startswith("python -m s4lite.ablation --sample")
    assert [(r["kind"], r["train_A"], r["dropout"], r["seed"]) for r in results] == [("hippo", False, 0.0, 0), ("hippo", True, 0.0, 0)]
    n = count_params(ablation.init_ablation_model(jax.random.PRNGKey(0), "hippo", 4, 1, 4))
    for r in results:
        assert set(r) == {"kind", "train_A", "dropout", "seed", "n_params", "history", "final_test_acc", "final_train_acc"}
        assert r["n_params"] == n
        assert [h["epoch"] for h in r["history"]] == [1, 2]
        assert {"train_loss", "train_acc", "test_acc", "train_time"} <= set(r["history"][0])
        assert np.isfinite(r["history"][-1]["train_loss"])
        assert r["final_test_acc"] == r["history"][-1]["test_acc"]
        assert r["final_test_acc"] * 16 == pytest.approx(round(r["final_test_acc"] * 16))  # a count of 16 digits
    assert returned["results"] == results
    # each cell is an engine run of its own: it can be resumed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["hippo-frozen-dropout0-seed0", "hippo-trained-dropout0-seed0"]


def test_frozen_cell_kept_A_and_trained_cell_moved_it(tiny_run):
    out, _ = tiny_run
    init = ablation.init_ablation_model(jax.random.PRNGKey(0), "hippo", 4, 1, 4)["layers"][0]["s4"]
    for cell, moved in (("hippo-frozen-dropout0-seed0", False), ("hippo-trained-dropout0-seed0", True)):
        tensors, _ = engine.read_checkpoint(out / cell / engine.CHECKPOINT)
        im = tensors["params/layers/0/s4/im"]
        assert (not np.array_equal(im, np.asarray(init["im"]))) == moved, cell


def test_main_resume_skips_finished_cells(tiny_run, tmp_path):
    import shutil

    out, returned = tiny_run
    shutil.copytree(out, tmp_path / "abl")
    args = TINY + ["--kinds", "hippo", "--dropouts", "0", "--train-a", "frozen", "trained", "--seeds", "0"]
    with pytest.raises(SystemExit, match="^--out: .*already holds an ablation"):
        ablation.main(args + ["--out", str(tmp_path / "abl")])
    with jax.enable_x64(False):
        again = ablation.main(args + ["--out", str(tmp_path / "abl"), "--resume"])
    assert [r["history"] for r in again["results"]] == [r["history"] for r in returned["results"]]


def test_main_refuses_models_above_the_cap(tmp_path):
    with pytest.raises(SystemExit, match="max-params"):
        ablation.main(TINY + ["--kinds", "random_dense", "--max-params", "10", "--out", str(tmp_path)])


@pytest.mark.parametrize(
    "args, match",
    [(["--epochs", "0"], "--epochs"), (["--kinds", "legs"], "--kinds"), (["--dropouts", "1.5"], "--dropouts"),
     (["--seeds", "-1"], "--seeds"), (["--batch-size", "0"], "--batch-size"), (["--lr", "-1"], "--lr")],
)  # fmt: skip
def test_main_rejects_bad_options_before_any_work(tmp_path, args, match):
    with pytest.raises(SystemExit, match=rf"^{match}"):
        ablation.main(TINY + args + ["--out", str(tmp_path / "abl")])
    assert not (tmp_path / "abl").exists()


def test_main_reports_a_data_error_in_one_line(tmp_path):
    args = [a for a in TINY if a != "--sample"] + ["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]
    with pytest.raises(SystemExit, match=r"^data: data_dir: .*is not a directory"):
        ablation.main(args)
