"""Sphinx extension for the s4lite book.

* Serve MathJax 3 from the site itself. The pip package ``django-static-mathjax`` carries MathJax
  3.2.2 (``mathjax/static/mathjax/es5``). We add its folder to the static files and point Sphinx at
  it, so every page renders its equations with no network (readers offline, and the headless-browser
  test, which blocks all outside requests).
* No launch buttons (Colab, Binder) on pages written as MyST Markdown notebooks (``book/*.md`` with
  ``{code-cell}``s): the theme would link Colab to the ``.md`` file, which Colab cannot open. The
  chapters under ``notebooks/`` are ``.ipynb`` files and keep their buttons.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config


def _local_mathjax(app: Sphinx, config: Config) -> None:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("django-static-mathjax is not installed: pip install -r requirements.txt")
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    es5 = static / "mathjax" / "es5" / "tex-chtml.js"
    if not es5.exists():
        raise RuntimeError(f"MathJax not found at {es5}")
    config.html_static_path = list(config.html_static_path) + [str(static)]
    config.mathjax_path = "mathjax/es5/tex-chtml.js"


def _no_launch_buttons_on_text_notebooks(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object
) -> None:
    if context.get("page_source_suffix") == ".ipynb":
        return
    buttons = context.get("header_buttons")
    if buttons:
        context["header_buttons"] = [b for b in buttons if b.get("label") != "launch-buttons"]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _local_mathjax)
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", _no_launch_buttons_on_text_notebooks, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
