"""The zero-shot resolution tool: resizing, Δ rescaling, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s4lite import resolution


def test_resize_shrinks_by_block_means_and_grows_by_repeats():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 28, 28))
    small = resolution.resize_images(x, 14)
    assert small.shape == (3, 14, 14)
    assert np.allclose(small[1, 2, 3], x[1, 4:6, 6:8].mean(), atol=1e-15)
    big = resolution.resize_images(x, 56)
    assert big.shape == (3, 56, 56)
    assert np.array_equal(big[2, 10:12, 20:22], np.full((2, 2), x[2, 5, 10]))
    assert np.allclose(resolution.resize_images(big, 28), x, atol=1e-15)  # round trip


def test_rescale_steps_multiplies_every_step():
    params = {"layers": [{"s4": {"log_step": np.log(np.array([0.1, 0.01]))}, "norm": 1}] * 2,
              "head": 0}  # fmt: skip
    out = resolution.rescale_steps(params, 4.0)
    for p in out["layers"]:
        assert np.allclose(np.exp(p["s4"]["log_step"]), [0.4, 0.04], rtol=1e-14)
        assert p["norm"] == 1
    assert np.allclose(np.exp(params["layers"][0]["s4"]["log_step"]), [0.1, 0.01])  # untouched


def test_cli_refuses_a_missing_run_and_an_existing_output(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        resolution.main(["--run", str(tmp_path / "none"), "--out", str(tmp_path / "r.json")])
    assert "--run" in str(err.value) and "config.json" in str(err.value)
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"mine": 1}))
    with pytest.raises(SystemExit) as err:
        resolution.main(["--run", str(tmp_path), "--out", str(out)])
    assert "already exists" in str(err.value)
    assert json.loads(out.read_text()) == {"mine": 1}  # nothing overwritten
