"""Print how long each chapter took to execute in the last book build (from the execution cache).

    python tools/chapter_times.py [_build/.jupyter_cache]
"""

from __future__ import annotations

import sys
from pathlib import Path

from jupyter_cache import get_cache


def chapter_times(cache_dir: str | Path) -> list[tuple[str, float]]:
    """``(notebook file name, execution seconds)`` of every cached notebook, sorted by name."""
    cache = get_cache(str(cache_dir))
    rows = [(Path(r.uri).name, float(r.data.get("execution_seconds", float("nan")))) for r in cache.list_cache_records()]
    return sorted(rows)


def main() -> None:
    cache_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/.jupyter_cache")
    if not cache_dir.exists():
        raise SystemExit(f"cache_dir: {cache_dir} does not exist (build the book first: make book)")
    rows = chapter_times(cache_dir)
    for name, seconds in rows:
        print(f"{name:32s} {seconds:7.1f} s")
    print(f"{'total':32s} {sum(s for _, s in rows):7.1f} s")


if __name__ == "__main__":
    main()
