"""No code line a reader sees is longer than 88 characters.

Every code cell of every chapter (``notebooks/*.ipynb``, the Colab install cell included) and every
``{code-cell}`` of the MyST pages under ``book/``: a longer line makes the page's code box scroll
sideways on the website and wraps in Colab. The package source that chapters show with
``show_source`` is checked by ``tests/test_show.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 88
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.M | re.S)


def long_lines(code: str, limit: int = LIMIT) -> list[tuple[int, int]]:
    """``(line number, length)`` of every line of ``code`` longer than ``limit`` characters."""
    return [(i, len(line)) for i, line in enumerate(code.splitlines(), 1) if len(line) > limit]


def test_long_lines() -> None:
    assert long_lines("x = 1\n" + "y" * 89 + "\n" + "z" * 88) == [(2, 89)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_code_lines_fit(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    bad = [
        f"cell {i}, line {n}: {length} characters"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for n, length in long_lines(cell.source)
    ]
    assert not bad, f"{path.name}: code lines longer than {LIMIT} characters:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("path", PAGES, ids=[p.stem for p in PAGES])
def test_page_code_cells_fit(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    bad = [
        f"code cell {k}, line {n}: {length} characters"
        for k, match in enumerate(CODE_CELL.finditer(text), 1)
        for n, length in long_lines(match.group(1))
    ]
    assert not bad, f"{path.name}: code lines longer than {LIMIT} characters:\n  " + "\n  ".join(bad)
