"""Show a package function's source on the page, right where the book derives it.

``show_source(fn)`` returns an object that Jupyter, Colab and the book's build render as
a highlighted Python listing read from the installed package at run time, so the page
and the code cannot drift apart. A reader who edits ``s4lite/`` (editable install) sees
the edit after a kernel restart.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import _check


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


def _source_of_args(fn: Any) -> tuple[Callable[..., Any]]:
    return (_check.function("fn", fn, "a function or class"),)


@_check.checked(_source_of_args)
def source_of(fn: Callable[..., Any]) -> Source:
    """The source of ``fn`` (a function or class), with its file and first line.

    Decorators are followed to the function they wrap (``inspect.unwrap``), so a
    checked, jitted function shows its own code with its decorators on top.
    """
    target = inspect.unwrap(fn)
    lines, start = inspect.getsourcelines(target)
    file = Path(inspect.getsourcefile(target) or "?")
    parts = file.parts
    path = "/".join(parts[parts.index("s4lite"):]) if "s4lite" in parts else file.name
    name = f"{getattr(target, '__module__', '') or ''}.{target.__qualname__}"
    return Source(name, path, start, "".join(lines).rstrip())


def _show_source_args(*fns: Any) -> tuple[Callable[..., Any], ...]:
    if not fns:
        raise ValueError("fns: expected at least one function")
    return tuple(_check.function("fns", fn, "functions or classes") for fn in fns)


@_check.checked(_show_source_args)
def show_source(*fns: Callable[..., Any]) -> Any:
    """Render the source of one or more functions (in the given order) as code."""
    sources = tuple(source_of(fn) for fn in fns)
    return sources[0] if len(sources) == 1 else _Many(sources)


@dataclass(frozen=True)
class _Many:
    sources: tuple[Source, ...]

    def _repr_markdown_(self) -> str:
        return "\n".join(s._repr_markdown_() for s in self.sources)

    def __str__(self) -> str:
        return "\n\n".join(s.code for s in self.sources)
