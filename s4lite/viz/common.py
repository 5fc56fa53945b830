r"""What several chapters share: finding and reading the committed artifact files, relative errors,
Markdown tables and a JAX timer.

* :func:`find_artifact`, :func:`read_json_object` — locate and read files under ``artifacts/``.
* :func:`rel_err` — :math:`\max|x - \text{ref}| / \max|\text{ref}|` in float64/complex128.
* :func:`markdown_table` — a GFM table for ``IPython.display.Markdown``.
* :func:`time_fn` — median wall-clock seconds of a JAX call after a warm-up (compilation) call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from .. import _check


def find_artifact(relpath: str, start: str | Path | None = None) -> Path | None:
    """The first ``<dir>/relpath`` that exists for ``dir`` = ``start`` (default: cwd) and its parents, else None.

    Notebooks run from ``notebooks/`` (the book build) or the repository root; both find
    ``artifacts/...``. In Colab (s4lite installed by pip, no checkout) the answer is None.
    """
    here = Path.cwd() if start is None else Path(start)
    for d in (here, *here.resolve().parents):
        candidate = d / relpath
        if candidate.is_file():
            return candidate
    return None


def read_json_object(path: Path) -> dict:
    """A JSON file holding one object; ``ValueError`` naming the path otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {str(path)!r} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"path: {str(path)!r} should hold a JSON object, got {type(data).__name__}")
    return data


def rel_err(x: Any, ref: Any) -> float:
    r""":math:`\max_j |x_j - \text{ref}_j| / \max_j |\text{ref}_j|`, computed in float64/complex128."""
    x = np.asarray(x, dtype=np.complex128)
    ref = np.asarray(ref, dtype=np.complex128)
    if x.shape != ref.shape:
        raise ValueError(f"x: expected the shape of ref {ref.shape}, got {x.shape}")
    scale = np.max(np.abs(ref))
    if scale == 0:
        raise ValueError("ref: expected a nonzero array (the error is relative to max |ref|)")
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(x - ref)) / scale)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown (GFM) table; ``align`` is one of ``l``, ``r``, ``c`` per column (default: left, then right)."""
    header = [str(h) for h in header]
    if not header:
        raise ValueError("header: expected at least one column")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows[{i}]: expected {len(header)} cells, got {len(row)}")
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align: expected {len(header)} letters from 'l', 'r', 'c', got {align!r}")
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def time_fn(fn: Callable[..., Any], *args: Any, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock time of ``fn(*args)`` in seconds over ``repeats`` calls.

    ``warmup`` calls run first and are not timed (the first compiles ``fn`` if it is jitted); every
    call is waited for with ``jax.block_until_ready``, since JAX returns before the work is done.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    repeats = _check.length("repeats", repeats)
    for _ in range(_check.length("warmup", warmup)):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))
