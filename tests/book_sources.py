"""What the book's sources declare, for the tests that check the notebooks and the built site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every ``root`` / ``file`` entry of a Jupyter Book ``_toc.yml`` (e.g. ``book/intro``), in order, without suffix."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                entry = node.get(key)
                if isinstance(entry, str):
                    out.append(entry[: -len(Path(entry).suffix)] if Path(entry).suffix in {".md", ".ipynb"} else entry)
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return out
