"""Print how long each chapter took to execute, from the book build's execution cache.

    python tools/chapter_times.py [_build/.jupyter_cache]

Only the cache record that matches each notebook as it is now is read (older versions of a notebook
may still sit in the cache).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]


def chapter_times(cache_dir: str | Path, notebooks: list[Path]) -> list[tuple[str, float | None]]:
    """``(notebook file name, execution seconds or None if it has no matching record)`` for each notebook."""
    cache = get_cache(str(cache_dir))
    rows: list[tuple[str, float | None]] = []
    for path in notebooks:
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            rows.append((path.name, None))
            continue
        seconds = record.data.get("execution_seconds")
        rows.append((path.name, None if seconds is None else float(seconds)))
    return rows


def main() -> None:
    cache_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/.jupyter_cache")
    if not cache_dir.exists():
        raise SystemExit(f"cache_dir: {cache_dir} does not exist (build the book first: make book)")
    rows = chapter_times(cache_dir, sorted((ROOT / "notebooks").glob("*.ipynb")))
    for name, seconds in rows:
        print(f"{name:32s} " + ("not in the cache" if seconds is None else f"{seconds:7.1f} s"))
    print(f"{'total':32s} {sum(s for _, s in rows if s is not None):7.1f} s")


if __name__ == "__main__":
    main()
