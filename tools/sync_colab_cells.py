#!/usr/bin/env python3
"""Make the first cell of every chapter the Colab install cell, built from ``_config.yml``.

The repository is named in one place, ``repository.url`` / ``repository.branch`` of ``_config.yml``.
Every ``notebooks/*.ipynb`` must start with a code cell that, in Colab only, clones ``<url>`` at
``<branch>`` into ``/content/s4lite-book`` (once), installs s4lite from the clone in editable mode
(once, when no ``s4lite`` distribution is installed; it never touches JAX), makes it importable in
the running kernel, and changes into the clone's ``notebooks/`` so that the chapters find the recorded
results under ``artifacts/``. It is tagged ``remove-cell`` (hidden on the website) and
``skip-execution`` (not run by the book build). A failed clone or install ends the cell with one
sentence that says what to do (no traceback). ``tests/test_colab.py`` runs it for real.

Usage::

    python tools/sync_colab_cells.py            # insert or replace the cell where needed
    python tools/sync_colab_cells.py --check    # exit 1 and list the notebooks that are out of sync
    python tools/sync_colab_cells.py notebooks/01_ssm.ipynb   # only these notebooks

Notebooks already in sync are not rewritten; the others are written by ``nbformat`` (indent 1), with
every other cell and all metadata left as they were.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
NOTEBOOK_DIR = ROOT / "notebooks"
TAGS = ["remove-cell", "skip-execution"]
MARKER = "# Colab only:"  # how an older version of the cell is recognised (and replaced)

# The cell, with {url} and {branch} filled in from _config.yml. Every line fits in 88 columns (the
# notebooks' line-length test reads it too). Three environment variables, all optional, are read by
# the cell: S4LITE_REPO_URL / S4LITE_REPO_BRANCH (a fork, or a local mirror) and S4LITE_COLAB_HOME
# (the folder that plays /content; tests/test_colab.py uses it).
_TEMPLATE = """\
# Colab only: clone the book's repository, install s4lite from it (editable, once; JAX
# stays as Colab ships it) and work from the clone's notebooks/, where the chapters find
# the recorded results in artifacts/. Outside Colab this cell does nothing.
# Editable install: after you edit a file in s4lite/, restart the session (Runtime >
# Restart session) and run the chapter again; an imported module is not read again.
# A fork: set os.environ["S4LITE_REPO_URL"] (and "S4LITE_REPO_BRANCH") before this cell.
import importlib, importlib.metadata, os, subprocess, sys
if "google.colab" in sys.modules:
    url = os.environ.get("S4LITE_REPO_URL", "{url}")
    branch = os.environ.get("S4LITE_REPO_BRANCH", "{branch}")
    home = os.environ.get("S4LITE_COLAB_HOME", "/content")
    repo = os.path.join(home, "s4lite-book")  # not "s4lite": would shadow the package

    class SetupFailed(Exception):  # Jupyter shows only its message, no traceback
        def _render_traceback_(self):
            return [str(self)]

    def run(cmd, what, advice):
        done = subprocess.run(cmd, capture_output=True, text=True)
        err = done.stderr.strip().splitlines() or ["no message"]
        said = [s for s in err if s.lower().startswith(("fatal", "error"))] or err[-1:]
        if done.returncode != 0:
            raise SetupFailed(f"Could not {{what}} ({{said[0]}}); {{advice}}.")

    if not os.path.isdir(os.path.join(repo, ".git")):
        run(["git", "clone", "-q", "--depth", "1", "-b", branch, url, repo],
            f"clone {{url}}", "check the runtime's internet connection and the repository"
            " URL (S4LITE_REPO_URL), then run this cell again")
    try:
        importlib.metadata.version("s4lite")
    except importlib.metadata.PackageNotFoundError:
        pip = [sys.executable, "-m", "pip", "install", "-q", "-e", repo]
        run(pip, "install s4lite",
            "restart the session (Runtime > Restart session) and run this cell again")
    if repo not in sys.path:  # importable right away, without a restart
        sys.path.insert(0, repo)
        importlib.invalidate_caches()
    os.chdir(os.path.join(repo, "notebooks"))"""


def read_repository(config: Path = CONFIG) -> tuple[str, str]:
    """``(url, branch)`` from the ``repository`` section of the Jupyter Book ``_config.yml``."""
    data = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    repo = data.get("repository")
    if not isinstance(repo, dict):
        raise ValueError(f"config: expected a 'repository' mapping in {config}, got {repo!r}")
    url, branch = repo.get("url"), repo.get("branch")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(f"config: expected repository.url to be an https:// URL in {config}, got {url!r}")
    if not isinstance(branch, str) or not branch:
        raise ValueError(f"config: expected repository.branch to be a non-empty string in {config}, got {branch!r}")
    return url.rstrip("/"), branch


def colab_cell_source(url: str, branch: str) -> str:
    """The exact source of the install cell: clone ``<url>`` at ``<branch>``, ``pip install`` the clone."""
    return _TEMPLATE.format(url=url, branch=branch)


def expected_source(config: Path = CONFIG) -> str:
    """The install cell's source for the repository named in ``config``."""
    return colab_cell_source(*read_repository(config))


def new_colab_cell(source: str, nbformat_minor: int) -> nbformat.NotebookNode:
    """A fresh code cell with ``source`` and the two tags (no outputs, no execution count)."""
    cell = nbformat.v4.new_code_cell(source=source, metadata={"tags": list(TAGS)})
    if nbformat_minor < 5:  # cell ids exist only from nbformat 4.5 on
        cell.pop("id", None)
    return cell


def first_cell_problem(nb: nbformat.NotebookNode, source: str) -> str | None:
    """Why the first cell of ``nb`` is not the install cell ``source``; ``None`` when it is."""
    if not nb.cells:
        return "the notebook has no cells"
    cell = nb.cells[0]
    if cell.cell_type != "code":
        return f"the first cell is a {cell.cell_type} cell, not the Colab install cell"
    if cell.source != source:
        return "the first cell's source differs from the Colab install cell"
    tags = cell.get("metadata", {}).get("tags")
    if tags != TAGS:
        return f"the first cell's tags are {tags!r}, expected {TAGS!r}"
    if cell.get("outputs") or cell.get("execution_count") is not None:
        return "the first cell has outputs or an execution count"
    return None


def sync(nb: nbformat.NotebookNode, source: str) -> bool:
    """Make ``nb``'s first cell the install cell (in place); return whether anything changed.

    A first code cell that starts with the install cell's comment line is an older version of it and is
    replaced (keeping its cell id); otherwise a new cell is inserted before everything else.
    """
    if first_cell_problem(nb, source) is None:
        return False
    cell = new_colab_cell(source, nb.get("nbformat_minor", 0))
    old = nb.cells[0] if nb.cells else None
    if old is not None and old.cell_type == "code" and old.source.lstrip().startswith(MARKER):
        if "id" in old and nb.get("nbformat_minor", 0) >= 5:
            cell["id"] = old["id"]
        nb.cells[0] = cell
    else:
        nb.cells.insert(0, cell)
    return True


def notebooks(root: Path = ROOT) -> list[Path]:
    """All chapter notebooks, ``notebooks/*.ipynb``, sorted."""
    return sorted((Path(root) / "notebooks").glob("*.ipynb"))


def check(paths: Iterable[Path] | None = None, config: Path = CONFIG) -> list[tuple[Path, str]]:
    """``(path, reason)`` for every notebook whose first cell is not the install cell (reads only)."""
    source = expected_source(config)
    out = []
    for path in notebooks() if paths is None else paths:
        nb = nbformat.read(str(path), as_version=4)
        problem = first_cell_problem(nb, source)
        if problem is not None:
            out.append((Path(path), problem))
    return out


def sync_files(paths: Iterable[Path] | None = None, config: Path = CONFIG) -> list[Path]:
    """Sync every notebook in ``paths`` (default: all chapters); return the ones rewritten."""
    source = expected_source(config)
    changed = []
    for path in notebooks() if paths is None else paths:
        nb = nbformat.read(str(path), as_version=4)
        if sync(nb, source):
            nbformat.validate(nb)
            nbformat.write(nb, str(path))  # nbformat's own layout: indent=1, sorted keys, trailing newline
            changed.append(Path(path))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any notebook is out of sync")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Jupyter Book _config.yml")
    args = parser.parse_args(argv)
    paths = args.paths or None
    if args.check:
        bad = check(paths, args.config)
        for path, why in bad:
            print(f"{path}: {why}")
        if bad:
            print(f"{len(bad)} notebook(s) out of sync; run: python tools/sync_colab_cells.py", file=sys.stderr)
            return 1
        return 0
    for path in sync_files(paths, args.config):
        print(f"synced {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
