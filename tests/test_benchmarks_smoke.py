"""Smoke tests of the benchmark scripts: each runs end to end with its smallest configuration in a fresh
process (as a user would start it) and writes a JSON record with the documented fields.

The numbers themselves are timings of this machine and are not checked, only their presence, sign and
internal consistency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from s4lite.model import count_params, init_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


THROUGHPUT_ARGS = ["--d-model", "8", "--n-layers", "1", "--N", "8", "--batch-size", "8", "--steps", "2"]
# smallest configuration: one tiny single-SSM case per method, and one batched implementation (the
# default times every variant of the GPU study, each compiled separately: ~4x slower on a CPU)
KERNEL_ARGS = [
    "--N", "8", "--L", "16", "--repeats", "1", "--min-time", "0",
    "--H", "2", "--batched-N", "8", "--batched-L", "16", "--batched-impl", "full",
]  # fmt: skip


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Start both scripts at once (each is mostly single-threaded import + compilation, so on two cores
    they overlap), wait for them (120 s at most each), and return ``(output dir, {name: (exit code,
    stdout, stderr)})``."""
    d = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    jobs = {"train_throughput": (BENCH / "train_throughput.py", THROUGHPUT_ARGS + ["--out", str(d / "train.json")])}
    if (BENCH / "kernel.py").exists():
        jobs["kernel"] = (BENCH / "kernel.py", KERNEL_ARGS + ["--out", str(d / "kernel.json"), "--plot", str(d / "kernel.png")])
    procs = {
        name: subprocess.Popen([sys.executable, str(script), *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, (script, args) in jobs.items()
    }  # fmt: skip
    results = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results[name] = (proc.returncode, stdout, stderr)
    return d, results


def finished(bench, name: str) -> Path:
    d, results = bench
    rc, stdout, stderr = results[name]
    assert rc == 0, f"{name}.py failed (exit {rc}):\n{stdout[-2000:]}\n{stderr[-4000:]}"
    return d


def check_meta(meta: dict, script: str) -> None:
    for key in ("device", "jax_version", "commit", "date", "command"):
        assert meta.get(key) not in (None, ""), key
    assert meta["jax_version"] == jax.__version__
    assert script in meta["command"]


def test_train_throughput_smoke(bench):
    out = finished(bench, "train_throughput") / "train.json"
    res = json.loads(out.read_text())
    assert set(res) >= {
        "meta", "config", "compile_s", "step_ms", "samples_per_s",
        "kernel_fwd_bwd_ms", "fft_conv_fwd_bwd_ms", "rest_ms", "share",
    }  # fmt: skip
    check_meta(res["meta"], "train_throughput.py")
    cfg = res["config"]
    assert (cfg["d_model"], cfg["n_layers"], cfg["N"], cfg["batch_size"], cfg["L"]) == (8, 1, 8, 8, 784)
    shapes = jax.eval_shape(lambda k: init_model(k, 1, 10, 8, 1, 8), jax.random.PRNGKey(0))
    assert cfg["n_params"] == count_params(shapes)
    for key in ("compile_s", "step_ms", "samples_per_s", "kernel_fwd_bwd_ms", "fft_conv_fwd_bwd_ms"):
        assert res[key] > 0, key
    assert res["rest_ms"] >= 0
    assert res["samples_per_s"] == pytest.approx(8 / (res["step_ms"] / 1e3), rel=1e-9)
    share = res["share"]
    assert set(share) == {"kernel", "fft_conv", "rest"}
    assert share["kernel"] == pytest.approx(res["kernel_fwd_bwd_ms"] / res["step_ms"], rel=1e-9)
    if res["rest_ms"] > 0:  # otherwise the parts timed alone add up to more than the step
        assert sum(share.values()) == pytest.approx(1.0, rel=1e-9)


def test_kernel_benchmark_smoke(bench):
    if not (BENCH / "kernel.py").exists():
        pytest.skip("benchmarks/kernel.py is not in this checkout")
    d = finished(bench, "kernel")
    out, png = d / "kernel.json", d / "kernel.png"
    res = json.loads(out.read_text())
    assert set(res) >= {"meta", "single", "batched"}
    check_meta(res["meta"], "kernel.py")
    assert res["meta"]["dtype"] == "float32"
    single = res["single"]
    assert {r["method"] for r in single} == {"naive", "dplr"}
    for r in single:
        assert (r["N"], r["L"]) == (8, 16) and r["ms"] > 0
    assert len(res["batched"]) == 1
    for r in res["batched"]:
        assert (r["H"], r["N"], r["L"]) == (2, 8, 16)
        assert r["forward_ms"] > 0 and r["forward_backward_ms"] > 0
        assert r["temp_bytes"] is None or r["temp_bytes"] >= 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_benchmark_rejects_a_bad_number_before_any_work():
    """A bad numeric option ends the script at once with one line naming it (exit status 1)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cases = {
        "train_throughput.py": (["--batch-size", "0"], "--batch-size: expected"),
        "kernel.py": (["--L", "-16"], "--L: expected"),
        "gpu_numerics.py": (["--N", "7"], "--N: expected an even"),
        "step_variants.py": (["--H", "0"], "--H: expected"),
        "conv_variants.py": (["--L", "0"], "--L: expected"),
        "selective_scan.py": (["--L", "0"], "--L: expected integers >= 1, got 0"),
    }
    procs = {
        name: subprocess.Popen([sys.executable, str(BENCH / name), *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, (args, _) in cases.items()
    }  # fmt: skip
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, (name, stderr)
        assert stderr.strip().splitlines() == [stderr.strip()] and cases[name][1] in stderr, (name, stderr)
