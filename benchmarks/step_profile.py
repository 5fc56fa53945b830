"""Where does a training step's time go? Kernel count and per-kernel device time, by source function.

    python benchmarks/step_profile.py --conv toeplitz_lean --kernel pallas --out artifacts/bench/profile.json

Compiles the real training step of ``s4lite.train`` (as ``train_throughput.py`` does), counts the
kernels in its optimized HLO (fusions, library calls, Triton/Pallas calls), records ``--steps`` steps
with the JAX profiler and sums the device time of every kernel. Each kernel is attributed to the
s4lite function whose source line XLA recorded for it (``layer_norm``, ``dropout``, ``glu_mix``,
the convolution, the S4 kernel, the optimizer, ...), so the JSON says which part of the model costs
what. ``--hlo`` also writes the optimized HLO text.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s4lite import engine  # noqa: E402
from s4lite.engine import TrainConfig, run_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import CHOICES, training_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


TABLE = re.compile(r"^(\d+) (.*)$")
INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s(fusion|custom-call|fft)\(")
FRAME = re.compile(r"stack_frame_id=(\d+)")
TARGET = re.compile(r'custom_call_target="([^"]+)"')
FIELDS = re.compile(r"(\w+)=(\d+)")


def stack_tables(hlo: str) -> dict[int, list[tuple[str, str]]]:
    """``{stack frame id: [(file, function), ...] innermost first}`` from the module's header tables."""
    tables: dict[str, dict[int, str]] = collections.defaultdict(dict)
    section = None
    for line in hlo.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
            continue
        m = TABLE.match(line)
        if section and m:
            tables[section][int(m.group(1))] = m.group(2).strip('"')
        elif section and line.strip():
            section = None
    files, funcs = tables["FileNames"], tables["FunctionNames"]
    locs = {i: dict((k, int(v)) for k, v in FIELDS.findall(t)) for i, t in tables["FileLocations"].items()}
    frames = {i: dict((k, int(v)) for k, v in FIELDS.findall(t)) for i, t in tables["StackFrames"].items()}
    chains = {}
    for fid in frames:
        chain, f, seen = [], fid, set()
        while f in frames and f not in seen:
            seen.add(f)
            loc = locs.get(frames[f]["file_location_id"], {})
            chain.append((files.get(loc.get("file_name_id"), "?"), funcs.get(loc.get("function_name_id"), "?")))
            f = frames[f].get("parent_frame_id", 0)
        chains[fid] = chain
    return chains


def part_of(chain: list[tuple[str, str]]) -> str:
    """The innermost s4lite function of a stack (argument checks skipped), else the library's name."""
    for file, func in chain:
        if "/s4lite/" in file and not file.endswith("_check.py"):
            return f"{Path(file).stem}.{func}"
    for lib in ("optax", "jax"):
        if any(f"/{lib}/" in file for file, _ in chain):
            return lib
    return "?"


def hlo_kernels(hlo: str) -> dict[str, dict]:
    """Kernel-launching instructions of the optimized module: ``{name: {kind, target, part}}``.

    Only instructions outside fused computations (a fusion's body is one kernel).
    """
    chains = stack_tables(hlo)
    out, in_fused = {}, False
    for line in hlo.splitlines():
        if line and not line.startswith(" "):  # a computation header
            in_fused = line.lstrip("%").startswith(("fused", "wrapped", "region", "horizontally_fused"))
            continue
        m = INSTR.match(line)
        if not m or in_fused:
            continue
        frame, target = FRAME.search(line), TARGET.search(line)
        out[m.group(1)] = {
            "kind": m.group(2),
            "target": target.group(1) if target else None,
            "part": part_of(chains.get(int(frame.group(1)), [])) if frame else "?",
        }
    return out


LIBRARY = (("gemm", "cuBLAS matmul"), ("xmma", "cuBLAS matmul"), ("nvjet", "cuBLAS matmul"),
           ("cutlass", "cuBLAS matmul"), ("fft", "cuFFT"), ("memcpy", "memory copy"), ("memset", "memory copy"))


def attribute(name: str, op: str, kernels: dict, by_name: dict) -> str:
    """The part of the model a device kernel belongs to (by its HLO instruction, else by its name)."""
    k = kernels.get(name) or by_name.get(name.replace(".", "_").replace("-", "_"))
    if k is None and op in kernels and not op.startswith("command_buffer"):
        k = kernels[op]
    if k is not None:
        return k["part"] + (f" [{k['target'].split('$')[-1][:20]}]" if k["target"] else "")
    low = name.lower()
    for key, part in LIBRARY:
        if key in low:
            return part
    return "other: " + name[:40]


def device_events(trace_dir: str) -> list[tuple[str, str, float]]:
    """``(kernel name, hlo_op, microseconds)`` for every event on a GPU plane of the trace."""
    from jax.profiler import ProfileData

    events = []
    for path in Path(trace_dir).rglob("*.xplane.pb"):
        data = ProfileData.from_file(str(path))
        for plane in data.planes:
            if not plane.name.startswith("/device:GPU"):
                continue
            for line in plane.lines:
                if "stream" not in line.name.lower():
                    continue
                for ev in line.events:
                    stats = {k: v for k, v in ev.stats}
                    events.append((ev.name, str(stats.get("hlo_op", "")), ev.duration_ns / 1e3))
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conv", choices=CHOICES["conv"], default="auto")
    ap.add_argument("--kernel", choices=CHOICES["kernel"], default="auto")
    ap.add_argument("--activations", choices=CHOICES["activations"], default="auto")
    ap.add_argument("--dropout-bits", choices=CHOICES["dropout_bits"], default="auto")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="profiled training steps")
    ap.add_argument("--out", default=None, help="write the JSON here")
    ap.add_argument("--hlo", default=None, help="write the optimized HLO text here")
    a = ap.parse_args()
    engine.check_options(a, {"batch_size": "int>=1", "steps": "int>=1"})
    try:
        cfg = TrainConfig(conv=a.conv, kernel=a.kernel, activations=a.activations, dropout_bits=a.dropout_bits,
                          batch_size=a.batch_size, progress=False)  # fmt: skip
        engine.resolve(cfg)
    except ValueError as err:
        engine.fail(f"--{err}")
    key = jax.random.PRNGKey(0)
    n = a.batch_size * 4
    x_all = jax.random.normal(key, (n, 28, 28))
    y_all = jax.random.randint(key, (n,), 0, 10)
    train_step, state, zeros, data = training_step(cfg, x_all, y_all)
    idx = jnp.arange(a.batch_size)
    rkey = jax.random.key(0, impl=cfg.prng)
    hlo = train_step.lower(state, zeros, data, idx, rkey).compile().as_text()
    if a.hlo:
        Path(a.hlo).write_text(hlo)
    kernels = hlo_kernels(hlo)
    sums = zeros
    for i in range(5):  # warm-up
        state, sums = train_step(state, sums, data, idx, jax.random.fold_in(rkey, i))
    jax.block_until_ready(sums)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            for i in range(a.steps):
                state, sums = train_step(state, sums, data, idx, jax.random.fold_in(rkey, 100 + i))
            jax.block_until_ready(sums)
        events = device_events(trace_dir)

    by_name = {name.replace(".", "_").replace("-", "_"): k for name, k in kernels.items()}
    by_part: dict[str, float] = collections.defaultdict(float)
    by_kernel: dict[str, list] = collections.defaultdict(lambda: [0.0, 0, ""])
    for name, op, us in events:
        part = attribute(name, op, kernels, by_name)
        by_part[part] += us / a.steps
        entry = by_kernel[name[:80]]
        entry[0] += us / a.steps
        entry[1] += 1
        entry[2] = part
    counts = collections.Counter(k["kind"] if not k["target"] else k["target"] for k in kernels.values())
    result = {
        "meta": {**run_info(), "command": " ".join(["python"] + sys.argv)},
        "config": {"conv": engine.resolve_conv(a.conv), "kernel": engine.resolve_kernel(a.kernel),
                   "activations": a.activations, "dropout_bits": a.dropout_bits,
                   "activations_resolved": engine.resolve_activations(a.activations, a.conv),
                   "dropout_bits_resolved": engine.resolve_dropout_bits(a.dropout_bits),
                   "batch_size": a.batch_size},  # fmt: skip
        "hlo_kernel_instructions": len(kernels),
        "hlo_kernel_kinds": dict(counts),
        "device_kernels_per_step": len(events) / a.steps,
        "device_ms_per_step": sum(us for _, _, us in events) / a.steps / 1e3,
        "ms_by_part": {k: v / 1e3 for k, v in sorted(by_part.items(), key=lambda kv: -kv[1])},
        "top_kernels_ms": {k: {"ms": v[0] / 1e3, "launches_per_step": v[1] / a.steps, "part": v[2]}
                           for k, v in sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[:40]},  # fmt: skip
    }
    print(json.dumps({k: result[k] for k in ("hlo_kernel_instructions", "hlo_kernel_kinds", "device_kernels_per_step",
                                               "device_ms_per_step", "ms_by_part")}, indent=1))  # fmt: skip
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
