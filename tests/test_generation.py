"""Tests for ``s4lite.generation``: inputs shifted by one, the NLL, RNN-mode generation, the runner.

float64 is on (conftest). The runner is exercised inside ``jax.enable_x64(False)``, in float32 as on
the GPU.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import generation
from s4lite.data import load_sample
from s4lite.model import init_model, init_recurrent, sequence_outputs


def _to64(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)


def test_encode_maps_grey_levels_to_minus_one_one():
    x = generation.encode(jnp.array([0, 255, 51]))
    assert x.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(x[:, 0]), [-1.0, 1.0, 51 / 255 * 2 - 1], atol=1e-7)


def test_shift_right_is_the_previous_pixel():
    pixels = jnp.array([[10, 20, 30, 40], [255, 0, 255, 0]])
    x = generation.shift_right(pixels)
    assert x.shape == (2, 4, 1)
    np.testing.assert_array_equal(x[:, 0, 0], generation.START)
    np.testing.assert_array_equal(x[:, 1:], generation.encode(pixels[:, :-1]))


_logits = jax.jit(lambda params, pixels: sequence_outputs(params, generation.shift_right(pixels)))


def test_outputs_are_causal_in_the_pixels():
    """Changing pixel t changes no logit before position t + 1 (the prediction of pixel t never sees it)."""
    params = _to64(init_model(jax.random.PRNGKey(0), 1, generation.LEVELS, d_model=4, n_layers=1, N=4))
    a = jnp.arange(12) * 20
    logits = _logits(params, jnp.stack([a, a.at[6].set(3)]))
    np.testing.assert_allclose(logits[0, :7], logits[1, :7], rtol=0, atol=1e-12)
    assert float(jnp.max(jnp.abs(logits[0, 7:] - logits[1, 7:]))) > 1e-6


def test_nll_is_finite_and_uniform_logits_give_log256():
    params = _to64(init_model(jax.random.PRNGKey(1), 1, generation.LEVELS, d_model=4, n_layers=1, N=4))
    pixels = jnp.asarray(load_sample()["x_test"][:3].reshape(3, -1)[:, 300:332])
    nll = jax.jit(generation.nll)
    value = float(nll(params, pixels))
    assert np.isfinite(value) and value > 0
    params["head"] = {"W": jnp.zeros_like(params["head"]["W"]), "b": jnp.zeros_like(params["head"]["b"])}
    assert float(nll(params, pixels)) == pytest.approx(math.log(256), rel=1e-12)


def test_generate_full_prefix_equals_convolution_float64():
    L = 24
    params = _to64(init_model(jax.random.PRNGKey(2), 1, generation.LEVELS, d_model=8, n_layers=2, N=4))
    pixels = jnp.asarray(load_sample()["x_test"][:2].reshape(2, -1)[:, 290 : 290 + L], jnp.int32)
    forms, _ = init_recurrent(params, L)
    gen = jax.jit(generation.generate, static_argnums=(4,))
    out, rnn = gen(params, forms, jax.random.PRNGKey(0), pixels, L)
    np.testing.assert_array_equal(out, pixels)  # teacher forcing: the prefix comes back unchanged
    # the CNN inside jit too: XLA may round the float32 encoding of a pixel differently in and out of jit
    cnn = jax.jit(lambda p, x: sequence_outputs(p, generation.shift_right(x)))(params, pixels)
    err = float(jnp.max(jnp.abs(rnn - cnn)) / jnp.max(jnp.abs(cnn)))
    assert rnn.dtype == jnp.float64 and err < 1e-9, err


# --------------------------------------------------------------------------------------------------
# The runner (float32), and everything that can be checked from what it wrote
# --------------------------------------------------------------------------------------------------

L_TINY, D, LAYERS, N_TINY, SAMPLES = 16, 4, 1, 4, 2
TINY = [
    "--sample", "--limit-train", "16", "--limit-test", "8", "--epochs", "1", "--batch-size", "8",
    "--d-model", str(D), "--n-layers", str(LAYERS), "--N", str(N_TINY), "--length", str(L_TINY),
    "--n-samples", str(SAMPLES), "--speed-steps", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("generation")
    with jax.enable_x64(False):
        metrics = generation.main(TINY + ["--out", str(out)])
    return out, metrics


def test_main_writes_its_files(tiny_run):
    out, metrics = tiny_run
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.json", "samples.npz", "checkpoint.safetensors"}
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("python -m s4lite.generation --sample")
    assert config["n_params"] == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(init_model(jax.random.PRNGKey(0), 1, 256, D, LAYERS, N_TINY)))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert [h["epoch"] for h in saved["history"]] == [1]
    h = saved["history"][-1]
    assert np.isfinite(h["test_nll"]) and h["test_bits_per_pixel"] == pytest.approx(h["test_nll"] / math.log(2), rel=1e-12)
    assert saved["final_test_nll_nats"] == h["test_nll"]
    assert saved["speed_batch"] == SAMPLES and saved["conv_speed_steps"] == 1
    assert saved["rnn_pixels_per_s"] > 0 and saved["conv_pixels_per_s"] > 0


def test_main_rnn_matches_cnn_in_float32(tiny_run):
    _, metrics = tiny_run
    # float32 with the state recovered from C̃ in float64: the logits agree to float32 rounding
    assert metrics["rnn_vs_cnn_max_abs_diff"] < 1e-5 * max(1.0, metrics["rnn_vs_cnn_max_abs_logit"])


def test_main_samples(tiny_run):
    out, _ = tiny_run
    with np.load(out / "samples.npz") as f:
        s = {k: f[k] for k in f.files}
    assert int(s["prefix_length"]) == L_TINY // 2
    for k in ("originals", "completions", "unconditional"):
        assert s[k].shape == (SAMPLES, L_TINY) and s[k].dtype == np.uint8
    test = load_sample()["x_test"].reshape(-1, 784)[:SAMPLES, :L_TINY]
    np.testing.assert_array_equal(s["originals"], test)
    np.testing.assert_array_equal(s["completions"][:, : L_TINY // 2], test[:, : L_TINY // 2])  # the given top half
    assert len(np.unique(s["unconditional"])) > 1  # sampled, not constant


def test_checkpoint_round_trip_reproduces_the_recorded_nll(tiny_run):
    out, metrics = tiny_run
    with jax.enable_x64(False):
        cfg = generation.GenerationConfig(sample=True, limit_test=8, length=L_TINY, d_model=D, n_layers=LAYERS, N=N_TINY)
        params, _, _ = generation.load_run(out, cfg, [])
        test = jnp.asarray(load_sample()["x_test"].reshape(-1, 784)[:8, :L_TINY])
        value = float(jax.jit(generation.nll)(params, test))
    assert value == pytest.approx(metrics["history"][-1]["test_nll"], rel=1e-5)


def test_load_reads_the_architecture_and_refuses_a_contradicting_option(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(SystemExit, match=r"^--load: .*--d-model 16 \(the run has 4\)"):
        generation.main(TINY + ["--out", str(tmp_path / "x"), "--load", str(out), "--d-model", "16"])
    cfg = generation.GenerationConfig()  # defaults: d_model 128, but the run is 4 wide
    _, loaded, _ = generation.load_run(out, cfg, [])
    assert (loaded.d_model, loaded.n_layers, loaded.N, loaded.length) == (D, LAYERS, N_TINY, L_TINY)


def test_main_load_reuses_parameters_and_history(tiny_run, tmp_path):
    out, metrics = tiny_run
    i = TINY.index("--d-model")
    argv = TINY[:i] + TINY[i + 2 :]  # the architecture comes from the run
    with jax.enable_x64(False):
        again = generation.main(argv + ["--out", str(tmp_path), "--load", str(out)])
    assert again["history"] == metrics["history"] and again["train_time_s"] == metrics["train_time_s"]
    assert again["rnn_vs_cnn_max_abs_diff"] == pytest.approx(metrics["rnn_vs_cnn_max_abs_diff"], rel=1e-6, abs=1e-9)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["trained_by"]["command"] == json.loads((out / "config.json").read_text())["command"]
    assert config["d_model"] == D


def test_legacy_params_file_still_loads(tmp_path):
    """Runs of the first version stored leaves in tree order (``params.safetensors``)."""
    from safetensors.numpy import save_file

    params = init_model(jax.random.PRNGKey(4), 1, 256, 4, 1, 4)
    save_file({f"{i:04d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))}, str(tmp_path / "p.st"))
    back = generation.load_params(tmp_path / "p.st", 4, 1, 4)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="path"):
        generation.load_params(tmp_path / "p.st", 4, 2, 4)


@pytest.mark.parametrize(
    "args, match",
    [(["--epochs", "0"], "--epochs"), (["--length", "0"], "--length"), (["--length", "785"], "--length"),
     (["--n-samples", "0"], "--n-samples"), (["--lr", "-1"], "--lr"), (["--batch-size", "0"], "--batch-size")],
)  # fmt: skip
def test_main_rejects_bad_options_before_any_work(tmp_path, args, match):
    with pytest.raises(SystemExit, match=rf"^{match}"):
        generation.main(TINY + args + ["--out", str(tmp_path / "g")])
    assert not (tmp_path / "g").exists()


def test_main_reports_a_data_error_in_one_line(tmp_path):
    args = [a for a in TINY if a != "--sample"] + ["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "g")]
    with pytest.raises(SystemExit, match=r"^data: data_dir: .*is not a directory"):
        generation.main(args)
