"""Tests for s4lite.train: augmentations, sequences, optimizer groups, the training step, and the CLI
(artifacts, exact resume, the divergence guard, corrupted data).

The training code runs in float32 as it does in real runs: every training call is wrapped in
``jax.enable_x64(False)`` (tests/conftest.py turns float64 on globally). The CLI runs use a tiny model
(H = 4, one layer, N = 8) on 32 digits of the shipped sample, so each run takes a few seconds, most
of it compilation.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shutil

from s4lite import data, engine, train
from s4lite import model

# one compiled initialization instead of many small eager operations
init_model = jax.jit(model.init_model, static_argnums=(1, 2, 3, 4, 5))

TINY = [
    "--sample", "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--eval-batch", "16",
    "--d-model", "4", "--n-layers", "1", "--N", "8", "--no-progress",
]  # fmt: skip


class Interrupted(Exception):
    """Stands for the process being killed at a chosen point."""


def run_main(argv: list[str]) -> dict:
    with jax.enable_x64(False):
        return train.main(argv)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories: ``A`` (3 epochs straight), ``B`` (the same run killed right after the
    checkpoint of epoch 2, then ``--resume``d)."""
    root = tmp_path_factory.mktemp("runs")
    out = {k: root / k for k in ("A", "B")}
    res = {"A": run_main(TINY + ["--epochs", "3", "--out", str(out["A"])])}
    args = TINY + ["--epochs", "3", "--out", str(out["B"])]
    real = engine.save_checkpoint

    def save_then_die(path, state, meta):
        real(path, state, meta)
        if meta["epoch"] == 2:
            raise Interrupted("killed after the checkpoint of epoch 2")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "save_checkpoint", save_then_die)
        with pytest.raises(Interrupted):
            run_main(args)
    res["B"] = run_main(args + ["--resume"])
    return out, res


# ----------------------------------------------------------------------------------------------
# images → sequences, augmentation
# ----------------------------------------------------------------------------------------------


def _images(n=4, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, 28, 28), jnp.float32)


def test_augmentations_keep_shapes():
    x = _images()
    key = jax.random.PRNGKey(1)
    assert train.shift_images(key, x).shape == x.shape
    moved = jax.jit(train.affine_images)(key, x)
    assert moved.shape == x.shape
    assert not np.allclose(np.asarray(moved), np.asarray(x))  # random ones do change the images


def test_augmentations_with_zero_transform_are_identity():
    x = _images()
    key = jax.random.PRNGKey(2)
    same = jax.jit(train.affine_images, static_argnames="scale")(key, x, max_degrees=0.0, scale=(1.0, 1.0), max_shift=0.0)
    np.testing.assert_allclose(np.asarray(same), np.asarray(x), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(train.shift_images(key, x, max_shift=0)), np.asarray(x))


def test_shift_images_translates_by_at_most_max_shift():
    x = jnp.full((8, 28, 28), train.BACKGROUND).at[:, 14, 14].set(10.0)
    y = np.asarray(train.shift_images(jax.random.PRNGKey(3), x, max_shift=2))
    for img in y:
        r, c = np.unravel_index(np.argmax(img), img.shape)
        assert img[r, c] == 10.0 and abs(r - 14) <= 2 and abs(c - 14) <= 2
        assert np.sum(img == 10.0) == 1  # a translation: the bright pixel moved, nothing else appeared


def test_to_sequence_row_major_and_permutation():
    images = jnp.arange(2 * 28 * 28, dtype=jnp.float32).reshape(2, 28, 28)
    seq = np.asarray(train.to_sequence(images, None))
    assert seq.shape == (2, 784, 1)
    for b in range(2):
        for k in (0, 1, 27, 28, 29, 400, 783):
            assert seq[b, k, 0] == images[b, k // 28, k % 28]
    perm = np.random.default_rng(0).permutation(784)
    pseq = np.asarray(train.to_sequence(images, jnp.asarray(perm)))
    np.testing.assert_array_equal(pseq[:, :, 0], seq[:, perm, 0])


# ----------------------------------------------------------------------------------------------
# optimizer
# ----------------------------------------------------------------------------------------------

SSM_PARAMS = {"log_neg_re", "im", "P", "B", "log_step"}  # typed here, not imported: the paper's list


def test_optimizer_groups_ssm_lr_and_no_weight_decay():
    """With zero gradients AdamW only decays: SSM parameters must not move, the others shrink by lr·wd."""
    cfg = engine.TrainConfig(lr=0.1, ssm_lr=0.01, weight_decay=0.5, warmup_frac=0.0)
    with jax.enable_x64(False):
        params = init_model(jax.random.PRNGKey(0), 1, 10, 4, 2, 8)
        opt = train.make_optimizer(cfg, 100, params)
        state = opt.init(params)
        zeros = jax.tree.map(jnp.zeros_like, params)

        @jax.jit
        def two_updates(p, state):
            for _ in range(2):  # step 0 has lr = 0 (warm-up starts at 0); step 1 has the peak lr
                updates, state = opt.update(zeros, state, p)
                p = jax.tree.map(lambda a, u: a + u, p, updates)
            return p

        p = two_updates(params, state)
    for i, (old, new) in enumerate(zip(params["layers"], p["layers"])):
        for k in SSM_PARAMS:
            np.testing.assert_array_equal(np.asarray(new["s4"][k]), np.asarray(old["s4"][k]), err_msg=f"layer {i} {k}")
        for k in ("Ct", "D"):
            np.testing.assert_allclose(np.asarray(new["s4"][k]), np.asarray(old["s4"][k]) * (1 - 0.1 * 0.5), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p["head"]["W"]), np.asarray(params["head"]["W"]) * (1 - 0.1 * 0.5), rtol=1e-5)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    cfg = engine.TrainConfig(sample=True, limit_train=32, d_model=8, n_layers=1, N=8, dropout=0.0, lr=3e-2,
                             ssm_lr=1e-2, warmup_frac=0.0)  # fmt: skip
    arrays = train.load_arrays(cfg)
    assert arrays["x_train"].shape == (32, 28, 28) and arrays["source"].startswith("shipped sample")
    with jax.enable_x64(False):
        task = train.smnist_task(cfg, arrays, engine.resolve(cfg))
        params = task.init(jax.random.PRNGKey(0))
        opt = train.make_optimizer(cfg, 20, params)
        state = {"params": params, "opt": opt.init(params)}
        train_step, eval_step = engine.make_steps(task, opt, 0.0)
        zeros = engine.zero_sums(task, state, task.train, 16)
        batch = {k: v[:16] for k, v in task.train.items()}
        mask = jnp.ones(16, jnp.float32)
        before = float(eval_step(params, batch, mask)["loss"]) / 16
        losses = []
        for s in range(8):
            state, sums = train_step(state, jax.tree.map(jnp.copy, zeros), task.train, jnp.arange(16),
                                     jax.random.PRNGKey(s))  # fmt: skip
            losses.append(float(sums["loss"]))
        after = float(eval_step(state["params"], batch, mask)["loss"]) / 16
    print(f"loss on the fixed batch: {before:.4f} → {after:.4f} (step losses {np.round(losses, 3)})")
    assert abs(losses[0] - before) < 1e-4  # the first step's loss is the loss before any update
    # a clear decrease (≈ 0.29 nats measured), far above float32 noise; the step losses go down too
    assert after < before - 0.15
    assert losses[-1] < losses[1] - 0.15


# ----------------------------------------------------------------------------------------------
# the CLI
# ----------------------------------------------------------------------------------------------


def test_cli_writes_every_artifact(runs):
    out, res = runs
    d = out["A"]
    config = json.loads((d / "config.json").read_text())
    for key in ("command", "commit", "device", "jax_version", "date", "n_params", "data_source", "segments"):
        assert config[key] not in (None, ""), key
    assert config["jax_version"] == jax.__version__
    assert config["command"].startswith("python -m s4lite.train ") and "--epochs 3" in config["command"]
    assert config["epochs"] == 3 and config["d_model"] == 4 and config["n_params"] == 242
    rows = read_jsonl(d / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "samples_per_s", "train_time", "wall_time"):
            assert np.isfinite(r[k]), k
    csv_lines = (d / "metrics.csv").read_text().strip().splitlines()
    assert csv_lines[0].split(",")[:3] == ["epoch", "train_loss", "train_acc"]
    assert len(csv_lines) == 4 and float(csv_lines[3].split(",")[1]) == pytest.approx(rows[2]["train_loss"], rel=1e-12)
    _, meta = engine.read_checkpoint(d / "checkpoint.safetensors")
    assert meta["epoch"] == 3 and meta["config"]["d_model"] == 4
    with np.load(d / "kernels.npz", allow_pickle=False) as k:
        keys = set(k.files)
        assert keys == {f"{a}_{b}" for a in ("kernels", "step", "Lambda") for b in ("init", "final")}
        assert k["kernels_init"].shape == k["kernels_final"].shape == (1, 4, 784)
        assert k["step_init"].shape == (1, 4) and k["Lambda_init"].shape == (1, 4, 4)
        assert not np.array_equal(k["kernels_init"], k["kernels_final"])  # training moved the kernels
        assert np.all(k["Lambda_final"].real < 0)
    summary = json.loads((d / "summary.json").read_text())
    assert summary == res["A"]
    assert summary["epochs"] == 3 and summary["final_test_acc"] == rows[-1]["test_acc"]


def test_checkpoint_is_one_safetensors_file_keyed_by_path(runs):
    out, _ = runs
    raw = (out["A"] / "checkpoint.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])  # safetensors: u64 little-endian header length, then JSON
    header = json.loads(raw[8 : 8 + n])
    assert "params/layers/0/s4/log_step" in header and "params/encoder/W" in header
    assert any(k.startswith("opt/") for k in header)
    assert all(v["dtype"] in ("F32", "I32", "F64", "I64") for k, v in header.items() if k != "__metadata__")
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    assert len(raw) == 8 + n + end  # nothing else in the file: no pickle
    assert not (out["A"] / "checkpoint.json").exists()  # one file, not a pair


def test_resume_reproduces_the_straight_run_and_records_both_segments(runs):
    out, res = runs
    a_rows, b_rows = read_jsonl(out["A"] / "metrics.jsonl"), read_jsonl(out["B"] / "metrics.jsonl")
    assert [r["epoch"] for r in b_rows] == [1, 2, 3]
    for a, b in zip(a_rows, b_rows):
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-6), (a["epoch"], k)
    for k in ("final_test_acc", "best_test_acc", "epochs"):
        assert res["B"][k] == res["A"][k]
    ta, tb = read_tensors(out["A"] / "checkpoint.safetensors"), read_tensors(out["B"] / "checkpoint.safetensors")
    assert ta.keys() == tb.keys()
    for k in ta:
        np.testing.assert_allclose(tb[k], ta[k], rtol=1e-6, atol=1e-7, err_msg=k)
    with np.load(out["A"] / "kernels.npz") as ka, np.load(out["B"] / "kernels.npz") as kb:
        for k in ka.files:
            np.testing.assert_allclose(kb[k], ka[k], rtol=1e-5, atol=1e-6, err_msg=k)
    segments = json.loads((out["B"] / "config.json").read_text())["segments"]
    assert [s["start_epoch"] for s in segments] == [0, 2]
    assert "--resume" not in segments[0]["command"] and segments[1]["command"].endswith("--resume")
    assert all(s["compile_s"] > 0 and s["commit"] and s["date"] for s in segments)
    # compilation is timed apart: the training time is the sum of the epochs' times
    assert b_rows[-1]["train_time"] == pytest.approx(sum(r["epoch_time"] for r in b_rows), rel=1e-9)


def test_resume_checks_ssm_init_before_training(runs, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(runs[0]["A"], d)
    (d / "ssm_init.npz").unlink()
    before = (d / "metrics.jsonl").read_text()
    with pytest.raises(SystemExit, match=r"^--resume: .*has no ssm_init\.npz"):
        run_main(TINY + ["--epochs", "3", "--out", str(d), "--resume"])
    assert (d / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize(
    "change, message",
    [(["--d-model", "8"], "--d-model: 4 → 8"), (["--ema", "0.9"], "--ema: 0.0 → 0.9"),
     (["--task", "psmnist"], "--task: 'smnist' → 'psmnist'"), (["--epochs", "5"], "--epochs: 3 → 5")],
)  # fmt: skip
def test_resume_refuses_changed_settings_before_loading_data(runs, tmp_path, change, message):
    d = tmp_path / "run"
    shutil.copytree(runs[0]["A"], d)
    args = TINY + ["--epochs", "3", "--out", str(d), "--resume"] + change
    with pytest.raises(SystemExit, match=rf"^--resume: .*{message}"):
        run_main(args)


def test_divergence_stops_with_a_clear_message(tmp_path):
    d = tmp_path / "nan"
    # step 0 runs at lr 0 (warm-up), step 1 at 1e30: the loss of epoch 2 is no longer finite
    args = TINY + ["--epochs", "2", "--lr", "1e30", "--ssm-lr", "1e30", "--out", str(d)]
    with pytest.raises(SystemExit, match="diverged"):
        run_main(args)
    # epoch 1 was finished and saved; nothing is saved for the diverged epoch 2
    assert [r["epoch"] for r in read_jsonl(d / "metrics.jsonl")] == [1]
    assert engine.read_checkpoint(d / "checkpoint.safetensors")[1]["epoch"] == 1


@pytest.mark.parametrize(
    "args, match",
    [(["--N", "7"], "--N"), (["--batch-size", "64"], "--batch-size: 64 is larger"), (["--epochs", "0"], "--epochs"),
     (["--epochs", "-1"], "--epochs"), (["--lr=-1e-3"], "--lr"), (["--ssm-lr", "-1"], "--ssm-lr"),
     (["--batch-size", "0"], "--batch-size: expected"), (["--batch-size", "-5"], "--batch-size: expected"),
     (["--eval-batch", "0"], "--eval-batch"), (["--d-model", "0"], "--d-model"), (["--n-layers", "0"], "--n-layers")],
)  # fmt: skip
def test_cli_rejects_bad_options_before_any_work(tmp_path, args, match):
    with pytest.raises(SystemExit, match=rf"^{match}"):
        run_main(TINY + args + ["--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# ----------------------------------------------------------------------------------------------
# corrupted data files are rejected by the CLI
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A directory with small MNIST IDX files (from the shipped sample) and an md5 table for them;
    HOME and S4LITE_DATA isolated so that no real cache is seen, and no download possible."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)

    def no_download(*args, **kwargs):
        raise RuntimeError("downloads are disabled in this test")

    monkeypatch.setattr(data, "_download", no_download)
    s = data.load_sample()
    d = tmp_path / "mnist"
    d.mkdir()
    arrays = {"train_images": s["x_train"][:64], "train_labels": s["y_train"][:64],
              "test_images": s["x_test"][:32], "test_labels": s["y_test"][:32]}  # fmt: skip
    table = {}
    for key, (name, _) in data.MNIST_FILES.items():
        table[key] = (name, data.md5sum(data.write_idx(d / name, arrays[key])))
    monkeypatch.setattr(data, "MNIST_FILES", table)
    return d, table


def _cli_args(d: Path, out: Path) -> list[str]:
    return ["--data-dir", str(d), "--batch-size", "16", "--eval-batch", "16", "--d-model", "4",
            "--n-layers", "1", "--N", "8", "--epochs", "1", "--no-progress", "--out", str(out)]  # fmt: skip


def test_cli_reads_the_good_files(data_dir, tmp_path):
    d, _ = data_dir
    args = train.build_parser().parse_args(_cli_args(d, tmp_path / "ok"))
    arrays = train.load_arrays(engine.config_from_args(engine.TrainConfig, args))
    assert arrays["source"].startswith("official 60k")
    assert arrays["x_train"].shape == (64, 28, 28) and arrays["x_test"].shape == (32, 28, 28)


def test_cli_rejects_a_truncated_file_with_matching_md5(data_dir, tmp_path, monkeypatch):
    """The md5 table says the truncated file is right (e.g. the table was made from it): the gzip layer
    must still catch the truncation, before any training."""
    d, table = data_dir
    name = table["test_images"][0]
    raw = (d / name).read_bytes()
    (d / name).write_bytes(raw[: len(raw) // 2])
    monkeypatch.setattr(data, "MNIST_FILES", {**table, "test_images": (name, data.md5sum(d / name))})
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"^data: .*truncated or corrupted"):
        run_main(_cli_args(d, out))
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.safetensors").exists()


def test_cli_reports_a_file_with_wrong_md5_as_corrupted(data_dir, tmp_path):
    d, table = data_dir
    name = table["test_images"][0]
    raw = (d / name).read_bytes()
    (d / name).write_bytes(raw[: len(raw) // 2])  # the table keeps the good file's md5
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=rf"{name}: md5 .* does not match"):
        with pytest.raises(SystemExit, match=rf"(?s)^data: corrupted MNIST file.*{name}.*download of fresh copies failed"):
            run_main(_cli_args(d, out))
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.safetensors").exists()


def test_cli_trains_with_the_tiled_convolution_channels_first(tmp_path):
    """``--conv toeplitz_tiled`` (the GPU default from compute capability 8.0; its Pallas kernels run in
    the interpreter here): the whole CLI path — channels-first blocks, bfloat16 activations,
    evaluation, checkpoint — runs and records what it resolved."""
    out = tmp_path / "tiled"
    res = run_main(TINY + ["--epochs", "2", "--conv", "toeplitz_tiled", "--out", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["conv_resolved"] == "toeplitz_tiled" and config["activations_resolved"] == "bfloat16"
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r[k]) for r in rows for k in ("train_loss", "test_loss", "test_acc"))
    assert res["final_test_acc"] == rows[-1]["test_acc"]
    assert (out / "checkpoint.safetensors").is_file()
