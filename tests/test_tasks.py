"""Selective copying: the generator's structure, determinism and bad input; the CLI end to end (tiny)."""

import json

import jax
import numpy as np
import pytest

from s4lite import copying, tasks


def test_selective_copying_structure():
    L, k, colors = 20, 4, 5
    d = tasks.selective_copying(jax.random.PRNGKey(0), 50, L, k, colors)
    x, y, m = (np.asarray(d[name]) for name in ("inputs", "targets", "mask"))
    assert x.shape == y.shape == m.shape == (50, L + k)
    assert np.all(x[:, L:] == colors + 1) and np.all(m[:, L:]) and not np.any(m[:, :L])
    for row_x, row_y in zip(x, y):
        data = row_x[:L][row_x[:L] != 0]
        assert len(data) == k and np.all((1 <= data) & (data <= colors))
        np.testing.assert_array_equal(row_y[L:], data)  # the data tokens, in order
    again = tasks.selective_copying(jax.random.PRNGKey(0), 50, L, k, colors)
    np.testing.assert_array_equal(again["inputs"], x)
    other = tasks.selective_copying(jax.random.PRNGKey(1), 50, L, k, colors)
    assert not np.array_equal(other["inputs"], x)
    # positions vary between sequences: the task is not solvable with fixed lags
    positions = {tuple(np.flatnonzero(r[:L])) for r in x}
    assert len(positions) > 40


def test_masked_metrics():
    targets = np.array([[0, 2, 3]])
    mask = np.array([[False, True, True]])
    logits = np.eye(4)[[[1, 2, 0]]] * 5.0
    assert float(tasks.masked_accuracy(logits, targets, mask)) == 0.5
    assert float(tasks.masked_cross_entropy(logits, targets, mask)) > 0


@pytest.mark.parametrize("name,call", [
    ("k", lambda: tasks.selective_copying(jax.random.PRNGKey(0), 2, 3, 4)),
    ("L", lambda: tasks.selective_copying(jax.random.PRNGKey(0), 2, 0)),
    ("n", lambda: tasks.selective_copying(jax.random.PRNGKey(0), 0, 8)),
])  # fmt: skip
def test_bad_input(name, call):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


def test_copying_cli_tiny(tmp_path):
    out = tmp_path / "run"
    res = copying.main(["--arch", "mamba", "--scan", "sequential", "--seq-len", "12", "--n-tokens", "2",
                        "--n-colors", "3", "--d-model", "8", "--n-layers", "1", "--N", "4", "--epochs", "2",
                        "--steps-per-epoch", "2", "--batch-size", "4", "--n-test", "8", "--eval-batch", "8",
                        "--no-progress", "--out", str(out)])  # fmt: skip
    assert len(res["history"]) == 2 and 0 <= res["history"][-1]["test_acc"] <= 1
    rec = copying.collect([str(out)], str(tmp_path / "results.json"))
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert run["model"] == "Mamba" and run["seq_len"] == 12 and len(run["history"]) == 2
    assert rec["runs"][0]["final_test_accuracy"] == res["history"][-1]["test_acc"]
    with pytest.raises(SystemExit, match="--seq-len"):
        copying.main(["--seq-len", "0", "--out", str(tmp_path / "bad")])


def test_generator_and_model_init_compile_once_per_shape():
    """Both are jitted (eager, they compile op by op): same values on every call."""
    from s4lite import mamba

    a = tasks.selective_copying(jax.random.PRNGKey(3), 4, 10, 2, 3)
    b = tasks.selective_copying(jax.random.PRNGKey(3), 4, 10, 2, 3)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    for selective in (True, False):
        p = mamba.init_model(jax.random.PRNGKey(0), 5, 8, 2, 4, selective, dt_max=0.05)
        q = mamba.init_model(jax.random.PRNGKey(0), 5, 8, 2, 4, selective, dt_max=0.05)
        assert len(p["layers"]) == 2 and ("lti" in p["layers"][0]["block"]) != selective
        for x, y in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)):
            np.testing.assert_array_equal(x, y)
