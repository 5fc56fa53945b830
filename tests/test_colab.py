"""The Colab install cell, run for real (no mocks): a fresh runtime, a real clone, a real ``pip install``.

Colab is played by:

* a fresh virtual environment **without s4lite**. It sees the project's third-party packages (JAX,
  NumPy, IPython, pip, setuptools, ...) through a ``.pth`` file that names a folder of links to
  ``.venv``'s site-packages, with every ``s4lite`` entry (the editable install's finder, ``.pth`` and
  ``dist-info``) left out; the test first checks that ``import s4lite`` fails there;
* ``google.colab`` (and ``google.colab.output``, which JAX imports in Colab) in ``sys.modules``: Colab
  imports it at kernel start, and the cell only checks that it is there;
* a temporary folder playing ``/content`` (``S4LITE_COLAB_HOME``);
* a ``file://`` clone of this project's ``HEAD`` standing in for the GitHub repository
  (``S4LITE_REPO_URL``; the default is ``repository.url`` of ``_config.yml``);
* an IPython shell (what a Colab kernel runs), so errors are shown as a notebook shows them.

In one fresh runtime, the first cell clones and installs, and then every chapter's first cell and
every import statement of that chapter run in the same kernel, without a restart (every chapter has
the same first cell). After a restart, the editable install imports a file added to the clone. pip runs
offline (``--no-index``, no build isolation: setuptools comes from ``.venv``) when ``.venv`` has the
setuptools that ``pyproject.toml`` asks for (``setuptools>=77``); otherwise pip builds in isolation and
fetches setuptools from the package index, which takes some 15 s longer. A second test points the cell at a repository that does not exist and checks that it
ends with one sentence that says what to do, without a traceback.

What is cloned is the last commit (``HEAD``): uncommitted changes to ``s4lite/`` are not in the clone.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement
from test_notebooks import NOTEBOOKS, sync_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SITE_PACKAGES = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))

# Runs inside the fake runtime: an IPython shell executes the cell, then the chapter's imports.
# Prints one JSON line at the end: what happened.
_RUNTIME = textwrap.dedent(
    """
    import json, sys, types
    colab = types.ModuleType("google.colab")  # what Colab's kernel has imported at start
    colab.output = types.ModuleType("google.colab.output")  # JAX's debugger imports it in Colab
    sys.modules.update({"google.colab": colab, "google.colab.output": colab.output})
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance(colors="NoColor")
    cells = json.loads(sys.argv[1])
    results = []
    for cell in cells:
        result = shell.run_cell(cell)
        results.append(bool(result.success))
        if not result.success:
            break
    import os
    s4 = sys.modules.get("s4lite")
    print("\\n@@" + json.dumps({
        "success": results,
        "cwd": os.getcwd(),
        "s4lite_file": getattr(s4, "__file__", None),
    }))
    """
)


def _chapter_imports(path: Path) -> str:
    """Every ``import`` / ``from … import`` statement of the chapter's code cells (after cell 1)."""
    nb = nbformat.read(str(path), as_version=4)
    transform = TransformerManager().transform_cell
    lines: list[str] = []
    for cell in nb.cells[1:]:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(transform(cell.source))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                line = ast.unparse(node)
                if line not in lines:
                    lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bare copy of this repository whose configured branch is ``HEAD``; its ``file://`` URL."""
    _, branch = sync_tool.read_repository()
    bare = tmp_path_factory.mktemp("origin") / "s4lite.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(bare)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    subprocess.run(["git", "--git-dir", str(bare), "update-ref", f"refs/heads/{branch}", head.stdout.strip()], check=True)
    return bare.as_uri()


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of links to ``.venv``'s site-packages, without anything that belongs to s4lite."""
    folder = tmp_path_factory.mktemp("third_party")
    for entry in SITE_PACKAGES.iterdir():
        name = entry.name.lower()
        if "s4lite" in name or name.endswith(".pth"):
            continue  # the editable s4lite (finder, .pth, dist-info); .pth files are not read from here anyway
        (folder / entry.name).symlink_to(entry)
    return folder


def _runtime(root: Path, packages: Path) -> Path:
    """A fresh virtual environment (a new Colab runtime); returns its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(purelib, "third_party.pth").write_text(f"{packages}\n", encoding="utf-8")
    return python


def _build_requirements_installed() -> bool:
    """Whether ``.venv`` already has what ``pyproject.toml``'s ``[build-system]`` requires."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: build in isolation
        return False
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    for line in requires:
        req = Requirement(line)
        try:
            if not req.specifier.contains(importlib.metadata.version(req.name), prereleases=True):
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


OFFLINE_BUILD = _build_requirements_installed()


def _env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(
        S4LITE_COLAB_HOME=str(home),
        S4LITE_REPO_URL=url,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        JAX_PLATFORMS="cpu",
        MPLBACKEND="Agg",
        GIT_TERMINAL_PROMPT="0",
    )
    if OFFLINE_BUILD:  # offline: the install finds everything it needs in .venv (setuptools included)
        env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")  # pip's inverted switch: "0" = off
    return env


def _run(python: Path, cells: list[str], home: Path, url: str, timeout: float = 120) -> tuple[dict, str]:
    done = subprocess.run(
        [str(python), "-c", _RUNTIME, json.dumps(cells)],
        cwd=home, env=_env(home, url), capture_output=True, text=True, timeout=timeout,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"the runtime crashed (rc {done.returncode}):\n{out[-3000:]}"
    shown, _, report = done.stdout.rpartition("\n@@")
    return json.loads(report), shown + done.stderr


def test_cell_uses_the_configured_repository() -> None:
    """The cell's defaults are the repository and branch of _config.yml; the variables override them."""
    url, branch = sync_tool.read_repository()
    source = sync_tool.expected_source()
    assert f'os.environ.get("S4LITE_REPO_URL", "{url}")' in source
    assert f'os.environ.get("S4LITE_REPO_BRANCH", "{branch}")' in source
    assert "jax" not in source.split("pip", 1)[1].split("\n")[0], "the install must not name JAX"


def test_fresh_runtime_has_no_s4lite(tmp_path: Path, packages: Path) -> None:
    """The fake runtime is a fair one: without the cell, s4lite cannot be imported there."""
    python = _runtime(tmp_path, packages)
    report, shown = _run(python, ["import numpy, IPython", "import s4lite"], tmp_path, "file:///nonexistent")
    assert report["success"] == [True, False], shown
    assert "No module named 's4lite'" in shown, shown
    check = "import importlib.metadata as m\ntry:\n    m.version('s4lite')\nexcept m.PackageNotFoundError:\n    pass\nelse:\n    raise SystemExit('found')"
    report, shown = _run(python, [check], tmp_path, "file:///nonexistent")
    assert report["success"] == [True], f"the fresh runtime has an s4lite distribution:\n{shown}"


def test_every_chapter_runs_its_install_cell_then_its_imports(
    tmp_path: Path, origin: str, packages: Path
) -> None:
    """A fresh runtime: cell 1 clones and installs; then, chapter by chapter, cell 1 and the chapter's imports.

    Every chapter starts with the same cell (``tests/test_notebooks.py`` checks it), so the first run
    plays a fresh runtime (clone, install, import without a restart) and the later runs play a chapter
    opened in a runtime where the book is already set up: nothing is cloned or installed twice.
    """
    python = _runtime(tmp_path, packages)
    cell = sync_tool.expected_source()
    cells, names = [], []
    for path in NOTEBOOKS:
        cells += [cell, _chapter_imports(path)]
        names += [f"{path.name}: cell 1", f"{path.name}: its imports"]
    report, shown = _run(python, cells, tmp_path, origin)
    clone = tmp_path / "s4lite-book"
    if report["success"] != [True] * len(cells):
        failed = names[len(report["success"]) - 1]
        pytest.fail(f"{failed} failed in the fake Colab runtime:\n{shown[-3000:]}", pytrace=False)
    assert Path(report["cwd"]) == clone / "notebooks", f"the cell left the kernel in {report['cwd']}"
    assert str(report["s4lite_file"]).startswith(str(clone / "s4lite")), (
        f"s4lite was imported from {report['s4lite_file']}, not from the clone {clone}"
    )

    # A restart (a new process on the same runtime): the cell clones and installs nothing again, and
    # the editable install imports the reader's edited file from the clone.
    (clone / "s4lite" / "_edited_by_the_reader.py").write_text("VALUE = 42\n", encoding="utf-8")
    edited = "from s4lite._edited_by_the_reader import VALUE\nassert VALUE == 42"
    report, shown = _run(python, [cell, edited], tmp_path, origin)
    assert report["success"] == [True, True], f"after a restart:\n{shown[-3000:]}"
    pip = subprocess.run(
        [str(python), "-m", "pip", "show", "s4lite"], env=_env(tmp_path, origin), capture_output=True, text=True
    )
    assert f"Editable project location: {clone}" in pip.stdout, f"not an editable install from the clone:\n{pip.stdout}"


def test_failed_clone_says_what_to_do_in_one_sentence(tmp_path: Path, packages: Path) -> None:
    """An unreachable repository: one sentence, no traceback, no CalledProcessError, no import error."""
    python = _runtime(tmp_path, packages)
    url = (tmp_path / "no-such-repository.git").as_uri()
    report, shown = _run(python, [sync_tool.expected_source(), "print('the next cell ran')"], tmp_path, url)
    assert report["success"] == [False], f"the failed cell did not stop the run:\n{shown}"
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{shown}"
    message = lines[0]
    for bad in ("Traceback", "CalledProcessError", "No module named", "Error:", "File \""):
        assert bad not in message, f"{bad!r} in the message: {message}"
    assert message.startswith(f"Could not clone {url}") and message.endswith("run this cell again."), message
    assert message.count(". ") == 0, f"more than one sentence: {message}"
    assert not (tmp_path / "s4lite-book").exists()
