"""Notebook hygiene, without executing anything (fast).

For every chapter ``notebooks/*.ipynb``:

* it is a valid nbformat-4 notebook with the ``python3`` kernel;
* its first cell is the Colab install cell, exactly as ``tools/sync_colab_cells.py`` writes it from
  ``_config.yml`` (fix with ``python tools/sync_colab_cells.py``);
* it is committed without outputs and without execution counts (the book build executes it);
* its markdown has exactly one H1, the page title, in the cell right after the install cell;
* every code cell that shows a figure (``plt.show()``) carries a caption in ``metadata.mystnb.figure``.

And the table of contents and the folder agree: every file ``_toc.yml`` names exists, and every
notebook in ``notebooks/`` is in ``_toc.yml``.
"""

from __future__ import annotations

import importlib.util
import sys
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from book_sources import toc_files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
ATX_H1 = re.compile(r"^\s{0,3}#(?=[ \t]|$)(.*)$")
ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
SETEXT_H1 = re.compile(r"^\s{0,3}=+\s*$")


def _load_sync_tool() -> Any:
    path = ROOT / "tools" / "sync_colab_cells.py"
    spec = importlib.util.spec_from_file_location("sync_colab_cells", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_tool = _load_sync_tool()


def markdown_h1s(text: str) -> list[str]:
    """The H1 headings (ATX ``# x`` and setext ``x\\n===``) of a Markdown text, outside fenced code and $$ math."""
    h1s: list[str] = []
    fence: str | None = None
    in_math = False
    prev = ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is not None:
            if m and m.group(1) == fence:
                fence = None
            prev = ""
            continue
        if m:
            fence = m.group(1)
            prev = ""
            continue
        stripped = line.strip()
        if in_math:
            in_math = not stripped.endswith("$$")
            continue
        if stripped.startswith("$$"):
            in_math = not (len(stripped) >= 4 and stripped.endswith("$$"))  # a one-line $$ x $$ opens nothing
            prev = ""
            continue
        h = ATX_H1.match(line)
        if h:
            h1s.append(ATX_CLOSE.sub("", h.group(1).strip()).strip())
        elif SETEXT_H1.match(line) and prev.strip():
            h1s.append(prev.strip())
        prev = line
    return h1s


def test_markdown_h1s_parser() -> None:
    """The H1 counter itself: headings count, code, math, H2 and '#' without a space do not."""
    text = (
        "# Title\n\n## Part\n\n```python\n# comment\n```\n\n$$\n# not a heading\n$$\n#hashtag\n"
        "$$ x $$\n$$ a = b\n# math\nc $$\nSetext\n===\n"
    )
    assert markdown_h1s(text) == ["Title", "Setext"]
    assert markdown_h1s("~~~\n# x\n~~~\ntext\n##\n") == []
    assert markdown_h1s("# A title #\n#") == ["A title", ""]


def test_toc_files_exist() -> None:
    """Every page the table of contents names exists (as .md or .ipynb)."""
    missing = [f for f in toc_files() if not ((ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists())]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_every_notebook_is_in_toc() -> None:
    """No chapter is left out of the book."""
    listed = set(toc_files())
    unlisted = [p.name for p in NOTEBOOKS if f"notebooks/{p.stem}" not in listed]
    assert not unlisted, f"notebooks not listed in _toc.yml: {unlisted}"


def test_sync_tool_reads_config() -> None:
    """The install cell names the repository and branch of _config.yml."""
    url, branch = sync_tool.read_repository()
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]
    assert url == config["url"].rstrip("/") and branch == config["branch"]
    source = sync_tool.expected_source()
    assert f'"{url}"' in source and f'"{branch}"' in source


def test_colab_cell_does_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside Colab the install cell runs nothing and leaves the working directory alone.

    (In Colab it is run for real, with a real clone and install, by ``tests/test_colab.py``.)
    """
    import os
    import subprocess

    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(("run", a)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(sync_tool.expected_source(), "<colab cell>", "exec"), {})
    assert calls == [], f"outside Colab the cell must do nothing, it did {calls}"


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request: pytest.FixtureRequest) -> tuple[Path, nbformat.NotebookNode]:
    path: Path = request.param
    return path, nbformat.read(str(path), as_version=nbformat.NO_CONVERT)


def test_valid_nbformat(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)  # raises ValidationError with the reason
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name}: kernelspec name {kernel!r}, expected 'python3'"


def test_first_cell_is_colab_cell(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, _ = notebook
    bad = sync_tool.check([path])
    assert not bad, f"{path.name}: {bad[0][1]}; fix with: python tools/sync_colab_cells.py"


def test_no_outputs(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts (clear them before committing)"


def test_one_h1_title(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    found = [(i, h) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" for h in markdown_h1s(cell.source)]
    assert len(found) == 1, f"{path.name}: expected exactly one H1, found {len(found)}: {found}"
    index, title = found[0]
    assert title, f"{path.name}: the H1 is empty"
    assert index == 1, f"{path.name}: the H1 is in cell {index}, expected cell 1 (right after the Colab cell)"


def test_figures_have_captions(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "plt.show()" not in cell.source:
            continue
        caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption")
        if not (isinstance(caption, str) and caption.strip()):
            missing.append(i)
    assert not missing, f"{path.name}: cells {missing} call plt.show() without metadata.mystnb.figure.caption"
