"""Sphinx extension for the s4lite book: serve MathJax 3 from the site itself.

The pip package ``django-static-mathjax`` carries MathJax 3.2.2 (``mathjax/static/mathjax/es5``).
We add its folder to the static files and point Sphinx at it, so every page renders its equations
with no network (readers offline, and the headless-browser test, which blocks all outside requests).
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


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
