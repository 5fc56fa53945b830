"""Finding and reading the committed artifact files (shared by the chapter helpers)."""

from __future__ import annotations

import json
from pathlib import Path


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
