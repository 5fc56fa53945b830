"""Tests for ``s4lite.engine``: the typed config and its parser, validation, the kernel choice (the
T4 fallback), parameter groups, checkpoints, refusals on resume, segments, Ctrl-C.

Most tests train a linear model on random data (compiles in well under a second), so the engine's
own behaviour is tested without the cost of an S4 model; ``tests/test_train.py`` runs the real CLI.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s4lite import engine
from s4lite.engine import Task, TrainConfig


def linear_task(n: int = 64, d: int = 6, seed: int = 0) -> Task:
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n, d)), np.float32)
    data = {"x": jnp.asarray(x), "y": jnp.asarray((x.sum(-1) > 0).astype(np.int32))}

    def init(key):
        return {"W": jax.random.normal(key, (d, 2)) * 0.1, "s4": {"log_step": jnp.zeros(2), "D": jnp.ones(2)}}

    def loss(params, batch, key):
        logits = batch["x"] @ params["W"] + params["s4"]["D"] * params["s4"]["log_step"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return ce, {"acc": jnp.sum(jnp.argmax(logits, -1) == batch["y"])}

    def evaluate(params, batch):
        logits = batch["x"] @ params["W"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        return {"loss": ce, "acc": (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)}

    return Task("linear", init, loss, evaluate, train=data, test={k: v[:37] for k, v in data.items()})


def cfg_for(tmp_path, **kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, eval_batch=16, lr=0.05, ssm_lr=0.01, progress=False, out=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


def fit32(cfg, task=None, **kw):
    with jax.enable_x64(False):
        return engine.fit(cfg, task or linear_task(), **kw)


pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch run (EMA on), made once; tests copy it with :func:`copy_run`."""
    root = tmp_path_factory.mktemp("base")
    fit32(cfg_for(root, epochs=1, ema=0.5))
    return root / "run"


def copy_run(one_epoch, tmp_path):
    shutil.copytree(one_epoch, tmp_path / "run")
    return tmp_path / "run"


# ----------------------------------------------------------------------------------------------
# the configuration and the parser
# ----------------------------------------------------------------------------------------------


def test_every_field_is_typed_documented_and_has_a_default():
    for f in dataclasses.fields(TrainConfig):
        assert f.type and f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING, f.name
    text = engine.build_parser().format_help()
    for f in dataclasses.fields(TrainConfig):
        assert engine.flag(f.name) in text or f"--no-{f.name}" in text, f.name
    assert "(default: 128)" in text  # argparse shows every default


def test_parser_round_trip_and_command_line():
    cfg = engine.config_from_args(TrainConfig, engine.build_parser().parse_args(["--d-model", "8", "--no-progress"]))
    assert cfg == TrainConfig(d_model=8, progress=False)
    again = engine.build_parser().parse_args(engine.command_line("x", cfg).split()[1:])
    assert engine.config_from_args(TrainConfig, again) == cfg


@pytest.mark.parametrize(
    "option, value",
    [("epochs", 0), ("epochs", -2), ("lr", -1e-3), ("ssm_lr", -1e-3), ("batch_size", 0), ("batch_size", -5),
     ("eval_batch", 0), ("d_model", 0), ("n_layers", 0), ("N", 7), ("dropout", 1.0), ("ema", 1.0),
     ("warmup_frac", 1.5), ("weight_decay", -0.1), ("limit_train", 0), ("time_budget", -1.0), ("lr", float("nan")),
     ("dt_min", 0.0)],
)  # fmt: skip
def test_validate_names_the_option(option, value):
    with pytest.raises(ValueError, match=rf"^{engine.flag(option)}: expected"):
        engine.validate(TrainConfig(**{option: value}))


def test_validate_ssm_rules():
    with pytest.raises(ValueError, match="bilinear only"):
        engine.validate(TrainConfig(discretization="zoh"))
    with pytest.raises(ValueError, match="^--init: S4 expects"):
        engine.validate(TrainConfig(init="lin"))
    engine.validate(TrainConfig(ssm="s4d", init="lin", discretization="zoh"))


# ----------------------------------------------------------------------------------------------
# implementation choices, resolved once (and the T4 fallback)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability, expected", [(None, "xla"), (7.5, "xla"), (8.0, "pallas"), (9.0, "pallas")])
def test_auto_kernel_needs_compute_capability_8(monkeypatch, capability, expected):
    """Triton refuses GPUs below compute capability 8.0 (Colab's T4 is 7.5): auto falls back to XLA."""
    monkeypatch.setattr(engine, "gpu_compute_capability", lambda: capability)
    assert engine.resolve_kernel("auto") == expected
    engine.resolve_backend.cache_clear()
    backend = engine.resolve_backend("s4", "fft", "auto")
    engine.resolve_backend.cache_clear()
    from s4lite import layer

    assert backend.kernel is (layer.s4_kernel_fused if expected == "pallas" else layer.s4_kernel)


def test_gpu_compute_capability_reads_the_device(monkeypatch):
    class Dev:
        compute_capability = "7.5"

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax, "devices", lambda: [Dev()])
    assert engine.gpu_compute_capability() == 7.5


def test_resolve_backend_conv_and_errors():
    from s4lite import layer

    assert engine.resolve_backend("s4", "toeplitz", "xla").conv is layer.toeplitz_conv
    assert engine.resolve_backend("s4", "fft", "xla") is engine.resolve_backend("s4", "fft", "xla")  # one object
    with pytest.raises(ValueError, match="bilinear only"):
        engine.resolve_backend("s4", "fft", "xla", "zoh")
    with pytest.raises(ValueError, match="^ssm:"):
        engine.resolve_backend("s5")


def test_s4d_backend_and_init():
    s4d = pytest.importorskip("s4lite.s4d", reason="s4lite/s4d.py (Part IV) is not in this checkout")
    cfg = TrainConfig(ssm="s4d", init="lin", discretization="zoh", N=8)
    params = engine.init_layer_fn(cfg)(jax.random.PRNGKey(0), 3, 8)
    K = engine.resolve(cfg).kernel(params, 16)
    ref = s4d.kernel_s4d_layer(params, 16, method="zoh")
    np.testing.assert_array_equal(np.asarray(K), np.asarray(ref))
    labels = engine.param_labels({"s4": params})["s4"]
    assert labels["log_step"] == "ssm" and labels["C"] == "other" and labels["D"] == "other"


# ----------------------------------------------------------------------------------------------
# parameter groups
# ----------------------------------------------------------------------------------------------


def test_param_labels_of_the_s4_model():
    from s4lite.model import init_model

    params = jax.eval_shape(lambda k: init_model(k, 1, 10, 4, 2, 8), jax.random.PRNGKey(0))
    labels = params_labels = engine.param_labels(params)
    ssm = {k for k, v in params_labels["layers"][1]["s4"].items() if v == "ssm"}
    assert ssm == {"log_neg_re", "im", "P", "B", "log_step"}
    assert set(jax.tree.leaves(labels["encoder"])) == {"other"}


# ----------------------------------------------------------------------------------------------
# fit: records, checkpoints, resume, refusals
# ----------------------------------------------------------------------------------------------


def test_fit_records_metrics_segments_and_one_checkpoint(tmp_path):
    cfg = cfg_for(tmp_path)
    res = fit32(cfg)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "config.json", "metrics.jsonl"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows == res.history
    assert set(rows[0]) >= {"train_loss", "train_acc", "test_loss", "test_acc", "samples_per_s", "train_time"}
    assert rows[-1]["train_time"] == pytest.approx(sum(r["epoch_time"] for r in rows))  # no compile time inside
    config = json.loads((out / "config.json").read_text())
    assert config["d_model"] == 128 and "d-model" not in config  # one key style
    (seg,) = config["segments"]
    assert set(seg) >= {"command", "date", "commit", "device", "compile_s", "start_epoch"} and seg["compile_s"] > 0
    raw = (out / "checkpoint.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format"] == engine.FORMAT
    assert json.loads(header["__metadata__"]["meta"])["config"]["epochs"] == 3
    assert {"params/W", "params/s4/log_step", "params/s4/D"} <= set(header)  # keyed by path
    assert any(k.startswith("opt/") for k in header)


def test_resume_continues_exactly_and_records_segments(tmp_path):
    straight = fit32(cfg_for(tmp_path, out=str(tmp_path / "a")))
    fit32(cfg_for(tmp_path, out=str(tmp_path / "b"), time_budget=0.0))  # stops after epoch 1
    resumed = fit32(cfg_for(tmp_path, out=str(tmp_path / "b"), resume=True))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
        assert b["test_acc"] == a["test_acc"]
    np.testing.assert_allclose(np.asarray(resumed.params["W"]), np.asarray(straight.params["W"]), rtol=1e-6)
    segments = json.loads((tmp_path / "b" / "config.json").read_text())["segments"]
    assert [s["start_epoch"] for s in segments] == [0, 1] and "--resume" in segments[1]["command"]


def test_ema_is_an_average_and_survives_resume(tmp_path):
    res = fit32(cfg_for(tmp_path, ema=0.5))
    assert not np.allclose(np.asarray(res.eval_params["W"]), np.asarray(res.params["W"]))
    tensors, _ = engine.read_checkpoint(tmp_path / "run" / engine.CHECKPOINT)
    np.testing.assert_array_equal(tensors["ema/W"], np.asarray(res.eval_params["W"]))


def test_existing_run_is_not_overwritten(one_epoch, tmp_path):
    out = copy_run(one_epoch, tmp_path)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(SystemExit, match="already holds a run.*--resume.*--overwrite"):
        fit32(cfg_for(tmp_path, epochs=1, ema=0.5))
    assert (out / "metrics.jsonl").read_text() == before
    fit32(cfg_for(tmp_path, epochs=1, ema=0.5, overwrite=True, seed=3))
    assert (out / "metrics.jsonl").read_text() != before


def test_resume_refuses_a_missing_directory_or_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match=r"^--resume: .*does not exist"):
        fit32(cfg_for(tmp_path, resume=True))
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(SystemExit, match=r"^--resume: .*has no checkpoint\.safetensors"):
        fit32(cfg_for(tmp_path, resume=True))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"epoch": 1}\n'  # not truncated


@pytest.mark.parametrize(
    "change, field",
    [({"epochs": 5}, "--epochs"), ({"ema": 0.9}, "--ema"), ({"task": "psmnist"}, "--task"), ({"d_model": 16}, "--d-model"),
     ({"lr": 0.1}, "--lr")],
)  # fmt: skip
def test_resume_refuses_changed_settings(one_epoch, tmp_path, change, field):
    copy_run(one_epoch, tmp_path)
    with pytest.raises(SystemExit, match=rf"^--resume: .*other settings: {field}"):
        fit32(cfg_for(tmp_path, **{"epochs": 1, "resume": True, "ema": 0.5, **change}))


def test_resume_refuses_a_dropped_ema(one_epoch, tmp_path):
    copy_run(one_epoch, tmp_path)
    with pytest.raises(SystemExit, match=r"^--resume: .*--ema: 0\.5 → 0\.0"):
        fit32(cfg_for(tmp_path, epochs=1, resume=True))


def test_resume_allows_the_documented_changes(one_epoch, tmp_path):
    copy_run(one_epoch, tmp_path)
    res = fit32(cfg_for(tmp_path, epochs=1, ema=0.5, resume=True, eval_batch=5, time_budget=9.0, data_dir="x"))
    assert [r["epoch"] for r in res.history] == [1]  # nothing left to do, nothing refused


def test_resume_refuses_damaged_or_foreign_checkpoints(one_epoch, tmp_path):
    ckpt = copy_run(one_epoch, tmp_path) / engine.CHECKPOINT
    good = ckpt.read_bytes()
    cfg = cfg_for(tmp_path, epochs=1, ema=0.5, resume=True)
    ckpt.write_bytes(good[: len(good) // 2])  # killed while copying, disk full, ...
    with pytest.raises(SystemExit, match=r"^--resume: .*corrupted or truncated"):
        fit32(cfg)
    ckpt.write_bytes(b"\x00" * 20)
    with pytest.raises(SystemExit, match=r"^--resume: .*corrupted"):
        fit32(cfg)
    ckpt.write_bytes(good)
    with pytest.raises(SystemExit, match=r"^--resume: .*params/W has shape \(6, 2\), the model expects \(7, 2\)"):
        fit32(cfg, linear_task(d=7))
    from safetensors.numpy import save_file

    save_file({"params/W": np.zeros((6, 2), np.float32)}, str(ckpt), metadata={"format": "other/0"})
    with pytest.raises(SystemExit, match=r"^--resume: .*format 'other/0'"):
        fit32(cfg)


def test_a_partial_checkpoint_write_never_replaces_the_checkpoint(tmp_path, monkeypatch):
    """Killed while writing the checkpoint of epoch 2: the new file is renamed into place only once
    complete, so the checkpoint of epoch 1 stays whole and the run resumes from it."""
    import safetensors.numpy

    real, calls = safetensors.numpy.save_file, []

    def killed_on_second(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            open(path, "wb").write(b"partial")
            raise KeyboardInterrupt
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.numpy, "save_file", killed_on_second)
    with pytest.raises(SystemExit):
        fit32(cfg_for(tmp_path, epochs=2))
    monkeypatch.setattr(safetensors.numpy, "save_file", real)
    _, meta = engine.read_checkpoint(tmp_path / "run" / engine.CHECKPOINT)
    assert meta["epoch"] == 1
    res = fit32(cfg_for(tmp_path, epochs=2, resume=True))
    assert [r["epoch"] for r in res.history] == [1, 2]


def test_a_crash_between_metrics_and_checkpoint_is_redone_once(tmp_path, monkeypatch):
    """Killed after epoch 2's metrics row was written but before its checkpoint: the resume redoes
    epoch 2 from the checkpoint of epoch 1, and metrics.jsonl keeps one row per epoch."""
    real = engine.save_checkpoint

    def die_on_epoch_2(path, state, meta):
        if meta["epoch"] == 2:
            raise RuntimeError("killed")
        real(path, state, meta)

    monkeypatch.setattr(engine, "save_checkpoint", die_on_epoch_2)
    with pytest.raises(RuntimeError):
        fit32(cfg_for(tmp_path))
    monkeypatch.setattr(engine, "save_checkpoint", real)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    res = fit32(cfg_for(tmp_path, resume=True))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows == res.history


def test_bad_out_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=r"^--out: .* is a file"):
        fit32(cfg_for(tmp_path, out=str(tmp_path / "file")))
    with pytest.raises(SystemExit, match=r"^--out: cannot write"):
        fit32(cfg_for(tmp_path, out=str(tmp_path / "file" / "sub")))


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = engine.evaluate_all

    def evaluate_then_interrupt(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(engine, "evaluate_all", evaluate_then_interrupt)
    with pytest.raises(SystemExit) as exc:
        fit32(cfg_for(tmp_path), prog="python -m s4lite.train")
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert "last checkpoint is" in err and "(epoch 1)" in err
    assert "python -m s4lite.train" in err and "--resume" in err and str(tmp_path / "run") in err


def test_divergence_is_one_line_and_saves_nothing_for_that_epoch(tmp_path):
    with pytest.raises(SystemExit, match=r"^training diverged in epoch 1: mean train loss is nan"):
        fit32(cfg_for(tmp_path, lr=1e30, ssm_lr=1e30, warmup_frac=0.0, epochs=2))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == ""
    assert not (tmp_path / "run" / engine.CHECKPOINT).exists()


def test_evaluation_pads_and_masks_the_last_batch():
    task = linear_task()
    params = task.init(jax.random.PRNGKey(1))
    _, eval_step = engine.make_steps(task, optax.sgd(0.1), 0.0)
    full = engine.evaluate_all(eval_step, params, task.test, 100)
    for batch in (5, 36):  # 37 examples: the last batch is padded
        got = engine.evaluate_all(eval_step, params, task.test, batch)
        assert got["acc"] == pytest.approx(full["acc"], abs=1e-6) and got["loss"] == pytest.approx(full["loss"], rel=1e-5)


def test_batch_function_task(tmp_path):
    """A task with a batch function instead of arrays (synthetic data drawn on the device)."""
    base = linear_task()

    def draw(key):
        x = jax.random.normal(key, (16, 6))
        return {"x": x, "y": (x.sum(-1) > 0).astype(jnp.int32)}

    task = dataclasses.replace(base, train=draw, steps_per_epoch=4)
    res = fit32(cfg_for(tmp_path, epochs=2), task, write=False)
    assert [r["epoch"] for r in res.history] == [1, 2] and not (tmp_path / "run").exists()
