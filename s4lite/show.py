"""Show a package function's source on the page, right where the book derives it.

``show_source(fn)`` returns an object that Jupyter, Colab and the book's build render as a
highlighted Python listing read from the installed package at run time, so the page and the code
cannot drift apart. A reader who edits ``s4lite/`` (editable install) sees the edit after a kernel
restart.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Source:
    """A function's source with where it lives; renders as a Markdown code block."""

    qualname: str
    path: str
    line: int
    code: str

    def _repr_markdown_(self) -> str:
        head = f"`{self.qualname}` — from `{self.path}`, line {self.line}"
        return f"{head}\n\n```python\n{self.code}\n```\n"

    def __str__(self) -> str:
        return self.code


def source_of(fn: Callable[..., Any]) -> Source:
    """The source of ``fn`` (a function or class of the package), its module path and first line."""
    if not callable(fn):
        raise ValueError(f"fn: expected a function or class, got {type(fn).__name__}")
    target = inspect.unwrap(fn)
    lines, start = inspect.getsourcelines(target)
    file = Path(inspect.getsourcefile(target) or "?")
    parts = file.parts
    path = "/".join(parts[parts.index("s4lite"):]) if "s4lite" in parts else file.name
    module = getattr(target, "__module__", "") or ""
    return Source(f"{module}.{target.__qualname__}", path, start, "".join(lines).rstrip())


def show_source(*fns: Callable[..., Any]) -> Any:
    """Render the source of one or more functions (in the given order) as highlighted code."""
    if not fns:
        raise ValueError("fns: expected at least one function")
    sources = [source_of(fn) for fn in fns]
    if len(sources) == 1:
        return sources[0]
    return _Many(tuple(sources))


@dataclass(frozen=True)
class _Many:
    sources: tuple[Source, ...]

    def _repr_markdown_(self) -> str:
        return "\n".join(s._repr_markdown_() for s in self.sources)

    def __str__(self) -> str:
        return "\n\n".join(s.code for s in self.sources)
