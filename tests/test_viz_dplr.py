"""Tests for ``s4lite.viz.dplr``: the helpers of chapters 5 (diagonalization), 6 (benchmark plots)
and 7 (recurrent timings and generation). Synthetic inputs only; float64 (see conftest)."""

from __future__ import annotations

import json
from math import comb

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from s4lite.convolution import kernel_naive  # noqa: E402
from s4lite.discretize import bilinear  # noqa: E402
from s4lite.dplr_step import discrete_dplr, scan_dplr  # noqa: E402
from s4lite.hippo import make_dplr, make_hippo  # noqa: E402
from s4lite.kernel import kernel_dplr  # noqa: E402
from s4lite.viz import dplr as viz  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- chapter 5


def test_rel_err_value_and_errors() -> None:
    assert viz.rel_err([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25, rel=1e-15)
    with pytest.raises(ValueError, match="x: expected the shape"):
        viz.rel_err([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="ref: expected a nonzero"):
        viz.rel_err([1.0], [0.0])


def test_eig_sorted_reconstructs_in_the_requested_precision(rng) -> None:
    A = rng.standard_normal((6, 6))
    for dtype, cdtype, tol in ((np.float64, np.complex128, 1e-12), (np.float32, np.complex64, 1e-5)):
        lam, V = viz.eig_sorted(A, dtype)
        assert lam.dtype == cdtype and V.dtype == cdtype
        assert np.all(np.diff(lam.real) <= 0)  # decreasing real part
        err = np.abs((V * lam) @ np.linalg.inv(V) - A).max() / np.abs(A).max()
        assert err < tol, (dtype, err)
    with pytest.raises(ValueError, match="dtype: expected float32 or float64"):
        viz.eig_sorted(A, np.int32)
    with pytest.raises(ValueError, match="A: expected a square matrix"):
        viz.eig_sorted(np.ones((2, 3)))


def test_closed_form_legs_eigenvectors_are_eigenvectors() -> None:
    """A V = V diag(λ) for Lemma 3.2's closed form (no eig involved), and the row sums are Fibonacci numbers."""
    N = 12
    A, _ = make_hippo(N, "legs")
    lam, V = viz.legs_eigenvectors(N)
    resid = np.abs(A @ V - V * lam).max() / (np.abs(A).max() * np.abs(V).max())
    assert resid < 1e-14, resid
    d = np.sqrt(2 * np.arange(N) + 1)
    W = np.abs(V) * d[None, :] / d[:, None]  # the binomials binom(i+j, i-j)
    fib = [0, 1]
    while len(fib) < 2 * N + 2:
        fib.append(fib[-1] + fib[-2])
    np.testing.assert_array_equal(W.sum(axis=1).round(), [fib[2 * i + 1] for i in range(N)])


def test_unit_diagonal_eig_matches_closed_form() -> None:
    N = 16
    A, _ = make_hippo(N, "legs")
    _, V = viz.eig_sorted(A)
    U = viz.unit_diagonal(V)
    _, V_exact = viz.legs_eigenvectors(N)
    assert viz.rel_err(U, V_exact) < 1e-12
    assert abs(V_exact[2 * 3, 3] / np.sqrt(13 / 7)) == comb(9, 3)
    with pytest.raises(ValueError, match="V: expected a nonzero diagonal"):
        viz.unit_diagonal(np.array([[0.0, 1.0], [1.0, 0.0]]))


def test_reconstruction_error_grows_with_N_and_is_worse_in_float32() -> None:
    small = viz.reconstruction_error(make_hippo(4, "legs")[0], np.float64)
    assert small < 1e-14, small
    e32 = viz.reconstruction_error(make_hippo(12, "legs")[0], np.float32)
    e64 = viz.reconstruction_error(make_hippo(12, "legs")[0], np.float64)
    assert e32 > 1e3 * e64, (e32, e64)
    assert viz.reconstruction_error(make_hippo(24, "legs")[0], np.float64) > 1e-6


def test_kernel_diagonalized_matches_naive_for_a_well_conditioned_system(stable_system, rng) -> None:
    A, B, C = stable_system(rng, 5, margin=0.5)
    step, L = 0.1, 64
    ref = kernel_naive(*bilinear(A, B, step), C, L)
    assert viz.rel_err(viz.kernel_diagonalized(A, B, C, step, L, np.float64), ref) < 1e-11
    assert viz.rel_err(viz.kernel_diagonalized(A, B, C, step, L, np.float32), ref) < 1e-4
    with pytest.raises(ValueError, match="C: expected"):
        viz.kernel_diagonalized(A, B, C[:3], step, L)


def test_kernel_diagonalized_breaks_for_legs() -> None:
    """The point of chapter 5: the same formula has no correct digit for LegS at N = 28 in float64."""
    N, step, L = 28, 0.01, 128
    A, B = make_hippo(N, "legs")
    C = np.ones(N)
    ref = kernel_naive(*bilinear(A, B, step), C, L)
    assert viz.rel_err(viz.kernel_diagonalized(A, B, C, step, L, np.float64), ref) > 0.1


def test_growth_rate_recovers_the_exponent() -> None:
    Ns = np.arange(2, 20)
    assert viz.growth_rate(Ns, 3.0 * 2.0 ** (1.5 * Ns)) == pytest.approx(1.5, abs=1e-12)
    with pytest.raises(ValueError, match="values: expected positive"):
        viz.growth_rate([1, 2], [1.0, 0.0])
    with pytest.raises(ValueError, match="values: expected the shape of Ns"):
        viz.growth_rate([1, 2, 3], [1.0, 2.0])


# ---------------------------------------------------------------- chapter 6: generating function


def test_fold_kernel() -> None:
    np.testing.assert_array_equal(viz.fold_kernel(np.arange(7.0), 3), [0 + 3 + 6, 1 + 4, 2 + 5])
    with pytest.raises(ValueError, match="L: expected an integer >= 1"):
        viz.fold_kernel(np.ones(4), 0)


def test_untruncated_generating_function_aliases_the_kernel(stable_system, rng) -> None:
    """IFFT of C(I − Āω)⁻¹B̄ at the roots of unity = the kernel folded onto L samples (time aliasing)."""
    A, B, C = stable_system(rng, 6, margin=0.2)
    Ab, Bb = bilinear(A, B, 0.5)
    L = 16  # |Ā^L| is not small here, so the folding is visible ...
    long = kernel_naive(Ab, Bb, C, 40 * L)  # ... and the tail beyond 40 L is below 1e-15
    folded = viz.fold_kernel(long, L)
    got = viz.kernel_without_truncation(Ab, Bb, C, L)
    assert viz.rel_err(got, folded) < 1e-12
    assert viz.rel_err(folded, long[:L]) > 1e-2  # the folding changed the kernel


# ---------------------------------------------------------------- chapter 6: benchmark files


def _bench(with_memory: bool = True) -> dict:
    meta = {
        "device": "TFRT_CPU_0", "device_kind": "cpu", "platform": "cpu", "jax_version": "0.test",
        "commit": "abc1234", "date": "2000-01-01", "command": "python benchmarks/x.py", "dtype": "float32",
    }
    single = [
        {"method": m, "N": N, "L": L, "ms": float(N * L * (N if m == "naive" else 1))}
        for m in ("naive", "dplr") for N in (16, 32) for L in (64, 256, 1024)
    ]
    batched = [
        {"H": H, "N": 16, "L": L, "forward_ms": 0.1 * H * L, "forward_backward_ms": 0.3 * H * L,
         "peak_bytes": (H * L * 64 if with_memory else None), "temp_bytes": (H * L * 8 if with_memory else None)}
        for H in (4, 8) for L in (64, 256)
    ]
    return {"meta": meta, "single": single, "batched": batched}


def test_load_bench_round_trip_and_schema_errors(tmp_path) -> None:
    path = tmp_path / "kernel_cpu.json"
    path.write_text(json.dumps(_bench()))
    assert viz.load_bench(path) == _bench()
    with pytest.raises(ValueError, match="path: expected an existing"):
        viz.load_bench(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        viz.load_bench(tmp_path / "bad.json")
    data = _bench()
    del data["meta"]["date"]
    with pytest.raises(ValueError, match=r"meta: missing keys \['date'\]"):
        viz.check_bench(data)
    data = _bench()
    del data["single"][1]["ms"]
    with pytest.raises(ValueError, match=r"single\[1\]: missing keys \['ms'\]"):
        viz.check_bench(data)
    with pytest.raises(ValueError, match=r"data: missing keys \['batched'\]"):
        viz.check_bench({"meta": {}, "single": []})


def test_find_artifact_walks_up_from_a_subfolder(tmp_path) -> None:
    target = tmp_path / "artifacts" / "bench" / "kernel_cpu.json"
    target.parent.mkdir(parents=True)
    target.write_text("{}")
    sub = tmp_path / "notebooks"
    sub.mkdir()
    assert viz.find_artifact("artifacts/bench/kernel_cpu.json", start=sub).resolve() == target.resolve()
    assert viz.find_artifact("artifacts/bench/kernel_gpu.json", start=sub) is None


def test_bench_meta_text_names_device_date_and_command() -> None:
    data = _bench()
    data["meta"]["repeats"] = 7  # an extra key is shown too
    text = viz.bench_meta_text(data)
    for word in ("TFRT_CPU_0", "0.test", "2000-01-01", "abc1234", "python benchmarks/x.py", "repeats : 7"):
        assert word in text


def test_bench_speedups_uses_the_largest_common_L() -> None:
    data = _bench()
    data["single"].append({"method": "dplr", "N": 16, "L": 4096, "ms": 1.0})  # no naive partner at 4096
    data["single"].append({"method": "dplr", "N": 99, "L": 64, "ms": 1.0})  # no naive run for N = 99
    rows = viz.bench_speedups(data)
    assert [(r["N"], r["L"]) for r in rows] == [(16, 1024), (32, 1024)]
    assert rows[1]["naive_ms"] == 32 * 32 * 1024 and rows[1]["dplr_ms"] == 32 * 1024
    assert rows[1]["speedup"] == pytest.approx(32.0, rel=1e-15)


def test_plot_bench_single_draws_one_loglog_line_per_method_and_N() -> None:
    fig = viz.plot_bench_single(_bench())
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = sorted(line.get_label() for line in ax.get_lines())
    assert labels == ["dplr, N=16", "dplr, N=32", "naive, N=16", "naive, N=32"]
    naive32 = next(line for line in ax.get_lines() if line.get_label() == "naive, N=32")
    np.testing.assert_array_equal(naive32.get_xdata(), [64, 256, 1024])
    np.testing.assert_array_equal(naive32.get_ydata(), [32 * 32 * L for L in (64, 256, 1024)])
    with pytest.raises(ValueError, match="'single' holds no timings"):
        viz.plot_bench_single({**_bench(), "single": []})


def test_plot_bench_batched_three_panels_and_missing_memory() -> None:
    fig = viz.plot_bench_batched(_bench())
    fwd, bwd, mem = fig.axes[:3]
    assert len(fwd.get_lines()) == 2 and len(bwd.get_lines()) == 2
    assert len(mem.get_lines()) == 4  # peak and temp for H = 4 and H = 8
    peak8 = next(line for line in mem.get_lines() if line.get_label() == "peak, H=8, N=16")
    np.testing.assert_allclose(peak8.get_ydata(), [8 * L * 64 / 2**20 for L in (64, 256)], rtol=1e-15)
    fig2 = viz.plot_bench_batched(_bench(with_memory=False))
    assert len(fig2.axes[2].get_lines()) == 0
    assert "no memory statistics" in fig2.axes[2].texts[0].get_text()
    with pytest.raises(ValueError, match="'batched' holds no timings"):
        viz.plot_bench_batched({**_bench(), "batched": []})


def test_plot_bench_batched_keeps_implementations_apart() -> None:
    """Rows with an optional "impl" key give one line per implementation, not one merged line."""
    data = _bench()
    data["batched"] = [
        {**row, "impl": impl, "forward_ms": row["forward_ms"] * k}
        for row in data["batched"] if row["H"] == 4
        for impl, k in (("full", 1.0), ("fused", 0.5))
    ]
    fwd = viz.plot_bench_batched(data).axes[0]
    lines = {line.get_label(): line for line in fwd.get_lines()}
    assert sorted(lines) == ["full, H=4, N=16", "fused, H=4, N=16"]
    np.testing.assert_allclose(lines["fused, H=4, N=16"].get_ydata(), [0.05 * 4 * L for L in (64, 256)])


# ---------------------------------------------------------------- chapter 7


def test_loglog_slope_and_seconds_per_step() -> None:
    x = np.array([16.0, 64.0, 256.0])
    assert viz.loglog_slope(x, 3.0 * x**2) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="expected positive"):
        viz.loglog_slope([1.0, 2.0], [1.0, -1.0])
    s = viz.seconds_per_step(jax.jit(jnp.cumsum), jnp.ones(100), repeats=2)
    assert 0 < s < 1e-2
    with pytest.raises(ValueError, match="repeats: expected an integer >= 1"):
        viz.seconds_per_step(jax.jit(jnp.cumsum), jnp.ones(10), repeats=0)


def test_recurrence_timings_shapes() -> None:
    out = viz.recurrence_timings([4, 8], L=50, repeats=1)
    np.testing.assert_array_equal(out["N"], [4, 8])
    for key in ("dense", "dplr"):
        assert out[key].shape == (2,) and np.all(out[key] > 0) and np.all(np.isfinite(out[key]))


def test_generation_rnn_equals_convolution_and_scan() -> None:
    """Both generation modes give the same sequence, and it is the scan over the inputs that were fed."""
    N, L, step = 8, 48, 0.05
    Lambda, P, B, V = make_dplr(N, "legs")
    C = np.linspace(1.0, 2.0, N) @ V  # a real SSM in the rotated coordinates
    disc = discrete_dplr(Lambda, P, P, B, step)
    drive = np.zeros(L)
    drive[:3] = 1.0
    y_rnn, u_rnn, s_rnn = viz.generate_recurrent(disc, C, drive, gain=2.0)
    K = kernel_dplr(Lambda, P, P, B, C, step, L)
    y_conv, u_conv, s_conv = viz.generate_convolutional(K, drive, gain=2.0)
    assert np.abs(y_rnn).max() > 1e-2  # not a trivial all-zero sequence
    assert viz.rel_err(y_conv, y_rnn) < 1e-11
    assert viz.rel_err(u_conv, u_rnn) < 1e-11
    y_scan, _ = scan_dplr(disc, C, u_rnn)
    assert viz.rel_err(y_rnn, np.real(y_scan)) < 1e-12
    assert s_rnn.shape == s_conv.shape == (L,) and np.all(s_rnn > 0)
    with pytest.raises(ValueError, match="drive: expected length L"):
        viz.generate_convolutional(K, drive[:5])


# ---------------------------------------------------------------- chapter 6: the GPU study of a layer's kernel


def _layer_run(date: str, impls: dict[str, float], Ls=(1024, 4096), peaks=None) -> dict:
    """A benchmark dict with batched rows for each impl (time = scale · L/1024), in the order given."""
    data = _bench()
    data["meta"]["date"] = date
    rows = []
    for impl, scale in impls.items():
        for L in Ls:
            rows.append({"impl": impl, "H": 8, "N": 16, "L": L, "forward_ms": scale * L / 1024,
                         "forward_backward_ms": 3 * scale * L / 1024, "peak_bytes": None, "temp_bytes": 10 * L,
                         "total_bytes": scale * 1e6 * L / 1024})
    for row, peak in zip(rows, peaks or []):
        row["peak_bytes"] = peak
    data["batched"] = rows
    return data


def _two_runs() -> dict:
    old = _layer_run("2000-01-01T10:00:00", {"a": 1.0, "b": 2.0}, peaks=[100, 300, 300, 200])
    new = _layer_run("2000-01-01T11:00:00", {"b": 0.5, "c": 4.0}, peaks=[50, 60, 60, 400])
    return {"old.json": old, "new.json": new}


def test_merge_batched_tags_rows_and_attributes_peaks() -> None:
    rows = viz.merge_batched(_two_runs())
    assert len(rows) == 8
    assert [r["source"] for r in rows] == ["old.json"] * 4 + ["new.json"] * 4
    assert rows[0]["date"] == "2000-01-01T10:00:00" and rows[-1]["date"] == "2000-01-01T11:00:00"
    # the high-water mark of each run: a row owns its peak only when it raised the mark
    assert [r["peak_own"] for r in rows] == [True, True, False, False, True, True, False, True]
    assert "source" not in _two_runs()["old.json"]["batched"][0]  # the inputs are not modified
    with pytest.raises(ValueError, match="runs: expected a non-empty mapping"):
        viz.merge_batched({})
    with pytest.raises(ValueError, match="meta: missing keys"):
        viz.merge_batched({"x": {"meta": {}, "single": [], "batched": []}})


def test_newest_find_and_best_rows() -> None:
    rows = viz.merge_batched(_two_runs())
    newest = viz.newest_rows(rows)
    assert len(newest) == 6  # b appears in both runs: once per L is kept
    b = viz.find_row(rows, "b", 4096)
    assert b["source"] == "new.json" and b["forward_ms"] == pytest.approx(0.5 * 4, rel=1e-15)
    assert viz.best_row(rows, "forward_ms", 1024)["impl"] == "b"  # new b (0.5) beats a (1.0) and old b (2.0)
    assert viz.best_row(rows, "total_bytes", 4096)["impl"] == "b"
    with pytest.raises(ValueError, match="impl: no row for 'z'"):
        viz.find_row(rows, "z", 1024)
    with pytest.raises(ValueError, match="key: no row at L=77"):
        viz.best_row(rows, "forward_ms", 77)
    with pytest.raises(ValueError, match="rows: expected rows from merge_batched"):
        viz.newest_rows(_bench()["batched"])


def test_target_table_met_and_missed() -> None:
    rows = viz.merge_batched(_two_runs())
    table = viz.target_table(rows, {"forward_ms": 1.9, "forward_backward_ms": 5.0}, 4096,
                             peer={"forward_ms": 9.0})
    fwd, fb = table
    assert fwd == {"key": "forward_ms", "target": 1.9, "best": 2.0, "impl": "b", "met": False, "peer": 9.0}
    assert fb["best"] == pytest.approx(6.0, rel=1e-15) and fb["met"] is False and fb["peer"] is None
    assert viz.target_table(rows, {"forward_ms": 2.0}, 4096)[0]["met"] is True  # the limit itself counts as met


def test_format_metric_and_html_table() -> None:
    assert viz.format_metric("forward_ms", 0.90484) == "0.905 ms"
    assert viz.format_metric("total_bytes", 1.67e9) == "1.670 GB"
    assert viz.format_metric("total_bytes", None) == "–"
    text = viz.html_table(["a", "b<c"], [[1, "x&y"], [2.5, "z"]], caption="cap")
    assert "<caption>cap</caption>" in text and "<th>b&lt;c</th>" in text and "<td>x&amp;y</td>" in text
    assert text.count("<tr>") == 3
    with pytest.raises(ValueError, match=r"body\[1\]: expected 2 cells"):
        viz.html_table(["a", "b"], [[1, 2], [3]])


def test_plot_layer_study_lines_peer_targets_and_peaks() -> None:
    rows = viz.merge_batched(_two_runs())
    peer = [{"L": 1024, "forward_ms": 3.0}, {"L": 4096, "forward_ms": 7.0, "total_bytes": 5e6}]
    fig = viz.plot_layer_study(rows, peer, {"forward_ms": 1.5, "total_bytes": 2e6}, 4096)
    fwd, fb, mem = fig.axes[:3]
    lines = {line.get_label(): line for line in fwd.get_lines()}
    # b is in both runs: one line per run, the older dashed; a and c keep their plain names
    assert {"a", "b (old.json)", "b (new.json)", "c", "peer (reported)", "target (upper limit)"} <= set(lines)
    assert lines["b (old.json)"].get_linestyle() == "--" and lines["b (new.json)"].get_linestyle() == "-"
    np.testing.assert_allclose(lines["b (new.json)"].get_ydata(), [0.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(lines["peer (reported)"].get_ydata(), [3.0, 7.0], rtol=1e-15)
    np.testing.assert_array_equal(lines["target (upper limit)"].get_xdata(), [4096])
    assert "target (upper limit)" not in {line.get_label() for line in fb.get_lines()}  # no target given for it
    mem_lines = {line.get_label(): line for line in mem.get_lines()}
    np.testing.assert_allclose(mem_lines["c"].get_ydata(), [4e6 / 1e9, 16e6 / 1e9], rtol=1e-15)  # GB
    np.testing.assert_allclose(mem_lines["peer (reported)"].get_ydata(), [5e6 / 1e9], rtol=1e-15)
    own_peaks = [line for line in mem.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "None"]
    assert len(own_peaks) == sum(r["peak_own"] for r in rows)  # one hollow circle per attributable peak
    assert mem.get_yscale() == "log" and fwd.get_xscale() == "log"
    with pytest.raises(ValueError, match="rows: expected at least one"):
        viz.plot_layer_study([])


def test_cauchy_flop_count_against_xla_cost_model() -> None:
    """16 elementwise flops per (node, pair) plus 8 per vector; XLA's count of the compiled function agrees
    on the per-vector part (the matrix products) and, counting repeated subexpressions again, lies
    between the shared count and the count of every operation as written (26 + 8 per vector)."""
    assert viz.cauchy_imag_flops_per_pair(4) == 48 and viz.cauchy_imag_flops_per_pair(1) == 24
    x1 = viz.xla_flops_per_pair(M=257, half_N=16, n_vectors=1)
    x4 = viz.xla_flops_per_pair(M=257, half_N=16, n_vectors=4)
    per_vector = (x4 - x1) / 3
    assert abs(per_vector - 8) < 0.2, per_vector  # the 2·M·N/2 flops of each of the 4 products
    for nv, x in ((1, x1), (4, x4)):
        assert viz.cauchy_imag_flops_per_pair(nv) <= x <= 26 + 8 * nv, (nv, x)
    with pytest.raises(ValueError, match="n_vectors: expected an integer >= 1"):
        viz.cauchy_imag_flops_per_pair(0)


def test_layer_kernel_work_by_hand_and_against_the_layer() -> None:
    from s4lite.layer import init_s4, s4_kernel

    H, N, L = 2, 4, 8  # M = 5 frequencies, 2 pairs per channel
    w = viz.layer_kernel_work(H, N, L, param_bytes=100, flops_per_pair=48)
    assert w["pairs"] == 2 * 5 * 2
    assert w["cauchy_flops"] == 20 * 48 and w["fft_flops"] == pytest.approx(5 * 2 * 8 * 3, rel=1e-15)
    assert w["flops"] == w["cauchy_flops"] + w["fft_flops"]
    assert w["compulsory_bytes"] == 100 + 2 * 8 * 4
    assert w["materialized_bytes"] == w["compulsory_bytes"] + 2 * 4 * 20 * 4
    # the kernel written is exactly what the layer returns (float32, H × L)
    K = s4_kernel(init_s4(jax.random.PRNGKey(0), H, N), L)
    assert K.dtype == jnp.float32 and w["compulsory_bytes"] - 100 == K.size * K.dtype.itemsize
    with pytest.raises(ValueError, match="N: expected an even state size"):
        viz.layer_kernel_work(2, 5, 8, 0, 48)
    with pytest.raises(ValueError, match="param_bytes: expected a byte count"):
        viz.layer_kernel_work(2, 4, 8, -1, 48)
    with pytest.raises(ValueError, match="flops_per_pair"):
        viz.layer_kernel_work(2, 4, 8, 0, 0)


def test_roofline_bounds() -> None:
    work = {"flops": 6e9, "compulsory_bytes": 2e6, "materialized_bytes": 4e9}
    b = viz.roofline_bounds(work, peak_flops=3e12, bandwidth=2e12)
    assert b == pytest.approx({"compute": 2e-3, "compulsory": 1e-6, "materialized": 2e-3}, rel=1e-15)
    with pytest.raises(ValueError, match="bandwidth"):
        viz.roofline_bounds(work, 1e12, 0.0)


def test_train_parts_and_plot_train_shares() -> None:
    train = {"meta": {"device_kind": "test GPU"}, "config": {"conv": "toeplitz"}, "step_ms": 10.0,
             "samples_per_s": 12800.0, "kernel_fwd_bwd_ms": 2.0, "fft_conv_fwd_bwd_ms": 5.0, "rest_ms": 3.0}
    assert viz.train_parts(train) == {"kernel": 2.0, "conv": 5.0, "rest": 3.0}
    ax = viz.plot_train_shares(train).axes[0]
    assert [p.get_height() for p in ax.patches] == [2.0, 5.0, 3.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S4 kernels", "convolution (toeplitz)", "rest"]
    assert "50% of the step" in [t.get_text() for t in ax.texts][1]
    assert "12,800 samples/s" in ax.get_title()
    del train["config"]  # older files do not name the convolution: the benchmark's default, fft
    ax = viz.plot_train_shares(train).axes[0]
    assert ax.get_xticklabels()[1].get_text() == "convolution (fft)"
    del train["rest_ms"]
    with pytest.raises(ValueError, match=r"train: missing keys \['rest_ms'\]"):
        viz.train_parts(train)


# ---------------------------------------------------------------- chapter 6: the fused (Pallas) kernel


def _eqns(jaxpr, name: str) -> list:
    """Every equation of primitive ``name`` in ``jaxpr`` and the jaxprs nested in its parameters."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            found.append(eqn)
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                found += _eqns(inner, name)
    return found


def test_fused_kernel_work_by_hand_and_against_the_traced_kernel() -> None:
    from s4lite.cauchy_pallas import kernel_dplr_conj_fused
    from s4lite.layer import init_s4, ssm_parts

    H, N, L, block = 2, 6, 8, 4  # M = 5 → 8 padded nodes; N/2 = 3 → 4 padded poles
    w = viz.fused_kernel_work(H, N, L, param_bytes=100, flops_per_pair=48, n_vectors=4, block_m=block)
    assert w["pairs"] == 2 * 8 * 4 and w["cauchy_flops"] == 64 * 48
    assert w["fft_flops"] == pytest.approx(5 * 2 * 8 * 3, rel=1e-15)
    assert w["flops"] == w["cauchy_flops"] + w["fft_flops"]
    assert w["cauchy_out_bytes"] == 2 * (2 * 8 * 8 * 4)  # 2J = 8 real (H, 8) float32 arrays, written and read
    assert w["spectrum_bytes"] == 2 * (2 * 5 * 8)  # (H, M) complex64, written and read
    assert w["compulsory_bytes"] == 100 + 2 * 8 * 4
    assert w["fused_bytes"] == w["compulsory_bytes"] + w["cauchy_out_bytes"] + w["spectrum_bytes"]
    # the counts are the shapes of what the traced kernel really produces (traced only, not run)
    params = init_s4(jax.random.PRNGKey(0), H, N)
    jaxpr = jax.make_jaxpr(lambda p: kernel_dplr_conj_fused(*ssm_parts(p), L, block_m=block))(params)
    call = _eqns(jaxpr.jaxpr, "pallas_call")[0]
    out = sum(v.aval.size * v.aval.dtype.itemsize for v in call.outvars)
    assert 2 * out == w["cauchy_out_bytes"]
    poles = call.invars[1].aval.shape  # (H, padded poles)
    assert H * call.outvars[0].aval.shape[1] * poles[1] == w["pairs"]
    fft = _eqns(jaxpr.jaxpr, "fft")[0]
    spec, kern = fft.invars[0].aval, fft.outvars[0].aval
    assert 2 * spec.size * spec.dtype.itemsize == w["spectrum_bytes"]
    assert kern.size * kern.dtype.itemsize == w["compulsory_bytes"] - 100
    with pytest.raises(ValueError, match="block_m: expected a power of two"):
        viz.fused_kernel_work(2, 6, 8, 0, 48, block_m=6)
    with pytest.raises(ValueError, match="N: expected an even state size"):
        viz.fused_kernel_work(2, 5, 8, 0, 48)


def test_roofline_bounds_of_the_fused_work() -> None:
    w = viz.fused_kernel_work(4, 8, 64, param_bytes=0, flops_per_pair=48)
    b = viz.roofline_bounds(w, peak_flops=1e12, bandwidth=1e9)
    assert set(b) == {"compute", "compulsory", "fused"}  # the parts are not bounded on their own
    assert b["fused"] == pytest.approx(w["fused_bytes"] / 1e9, rel=1e-15)
    assert b["compute"] == pytest.approx(w["flops"] / 1e12, rel=1e-15)
    with pytest.raises(ValueError, match="work: expected a 'flops' entry"):
        viz.roofline_bounds({"compulsory_bytes": 1.0}, 1.0, 1.0)


def test_run_spread_compares_the_runs_of_one_implementation() -> None:
    rows = viz.merge_batched(_two_runs())
    spread = viz.run_spread(rows, 1024)
    assert [(s["impl"], s["key"]) for s in spread] == [("b", "forward_ms"), ("b", "forward_backward_ms")]
    assert spread[0]["values"] == {"old.json": 2.0, "new.json": 0.5}
    assert spread[0]["spread"] == pytest.approx(3.0, rel=1e-15) and spread[1]["spread"] == pytest.approx(3.0, rel=1e-15)
    assert viz.run_spread(rows, 77) == []
    assert viz.run_spread(rows, 1024, keys=("total_bytes",))[0]["values"] == {"old.json": 2e6, "new.json": 0.5e6}


def test_pivot_table() -> None:
    recs = [{"L": 784, "kernel": "xla", "p": "default", "e": 1.0},
            {"L": 784, "kernel": "xla", "p": "highest", "e": 2.0},
            {"L": 784, "kernel": "pallas", "p": "highest", "e": 3.0}]
    header, body = viz.pivot_table(recs, ("L", "kernel"), "p", "e")
    assert header == ["L", "kernel", "default", "highest"]
    assert body == [[784, "xla", 1.0, 2.0], [784, "pallas", None, 3.0]]
    with pytest.raises(ValueError, match=r"records\[1\]: missing keys \['e'\]"):
        viz.pivot_table([recs[0], {"L": 1, "kernel": "x", "p": "default"}], ("L", "kernel"), "p", "e")
    with pytest.raises(ValueError, match="a second value"):
        viz.pivot_table([recs[0], recs[0]], ("L", "kernel"), "p", "e")


def test_plot_block_study_one_line_per_length_and_run() -> None:
    old = _layer_run("2000-01-01T10:00:00", {"p_b32": 1.0, "p": 2.0, "other": 9.0})
    new = _layer_run("2000-01-01T11:00:00", {"p": 0.5, "p_b128": 4.0})
    rows = viz.merge_batched({"old.json": old, "new.json": new})
    fig = viz.plot_block_study(rows, {"p_b32": 32, "p": 64, "p_b128": 128})
    fwd, fb = fig.axes[:2]
    lines = {line.get_label(): line for line in fwd.get_lines()}
    assert set(lines) == {"L = 1024 (old.json)", "L = 4096 (old.json)", "L = 1024 (new.json)", "L = 4096 (new.json)"}
    old_line, new_line = lines["L = 4096 (old.json)"], lines["L = 4096 (new.json)"]
    np.testing.assert_array_equal(old_line.get_xdata(), [32, 64])
    np.testing.assert_allclose(old_line.get_ydata(), [4.0, 8.0], rtol=1e-15)  # scale · L/1024, "other" left out
    np.testing.assert_array_equal(new_line.get_xdata(), [64, 128])
    assert old_line.get_linestyle() == "--" and new_line.get_linestyle() == "-"
    fb_new = {line.get_label(): line for line in fb.get_lines()}["L = 1024 (new.json)"]
    np.testing.assert_allclose(fb_new.get_ydata(), [1.5, 12.0], rtol=1e-15)
    assert [t.get_text() for t in fwd.get_xticklabels()] == ["32", "64", "128"]
    with pytest.raises(ValueError, match="rows: no row of the implementations"):
        viz.plot_block_study(rows, {"zzz": 16})


def test_kernel_and_grad_matches_the_kernel_and_finite_differences() -> None:
    from s4lite.layer import init_s4, s4_kernel

    H, N, L = 2, 8, 16
    params = jax.tree.map(lambda x: x.astype(jnp.float64), init_s4(jax.random.PRNGKey(3), H, N))
    W = jax.random.normal(jax.random.PRNGKey(4), (H, L), jnp.float64)
    K, grads = viz.kernel_and_grad(params, L, W, "xla")
    kernel = jax.jit(lambda p: s4_kernel(p, L, "xla"))
    assert viz.rel_err(K, kernel(params)) < 1e-14
    assert set(grads) == set(params) and all(grads[k].shape == params[k].shape for k in params)
    # directional derivative along a random direction against central differences of the loss
    keys = jax.random.split(jax.random.PRNGKey(5), len(params))
    d = {k: jax.random.normal(s, params[k].shape, jnp.float64) for k, s in zip(sorted(params), keys)}
    loss = lambda p: float(jnp.sum(W * kernel(p)))  # noqa: E731
    eps = 1e-6
    shifted = lambda sign: {k: params[k] + sign * eps * d[k] for k in params}  # noqa: E731
    fd = (loss(shifted(+1)) - loss(shifted(-1))) / (2 * eps)
    ad = sum(float(jnp.sum(grads[k] * d[k])) for k in params)
    assert abs(fd - ad) <= 1e-6 * abs(ad), (fd, ad)
    with pytest.raises(ValueError, match=r"weights: expected shape \(H, L\) = \(2, 16\)"):
        viz.kernel_and_grad(params, L, W[:, :8])
    with pytest.raises(ValueError, match="params: expected S4 layer parameters"):
        viz.kernel_and_grad({"x": W}, L, W)


def test_plot_train_configs_stacks_the_parts_and_marks_one() -> None:
    def train(k, c, r, dev="test GPU"):
        return {"meta": {"device_kind": dev}, "step_ms": k + c + r, "samples_per_s": 128e3 / (k + c + r),
                "kernel_fwd_bwd_ms": k, "fft_conv_fwd_bwd_ms": c, "rest_ms": r}

    trains = {"A": train(1.0, 2.0, 3.0), "B": train(0.5, 1.5, 2.0)}
    ax = viz.plot_train_configs(trains, highlight="B").axes[0]
    bars = ax.patches  # kernel bars (A, B), then conv, then rest
    assert [p.get_width() for p in bars] == [1.0, 0.5, 2.0, 1.5, 3.0, 2.0]
    assert [p.get_x() for p in bars] == [0.0, 0.0, 1.0, 0.5, 3.0, 2.0]
    assert bars[0].get_y() > bars[1].get_y()  # A drawn above B, in the order given
    texts = [t.get_text() for t in ax.texts]
    assert "6.00 ms, 21,333 samples/s" in texts[0] and "4.00 ms, 32,000 samples/s" in texts[1]
    ticks = {t.get_text(): t for t in ax.get_yticklabels()}
    assert set(ticks) == {"A", "★ B"} and ticks["★ B"].get_fontweight() == "bold"
    assert ax.get_xlabel() == "time per training step (ms)"
    with pytest.raises(ValueError, match="highlight: expected one of"):
        viz.plot_train_configs(trains, highlight="C")
    with pytest.raises(ValueError, match="trains: expected a non-empty mapping"):
        viz.plot_train_configs({})
