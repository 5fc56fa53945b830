"""Command-line option checks that need no JAX: a bad option ends a tool before JAX is imported.

``s4lite.engine`` re-exports these names; the benchmark scripts import them from here so that a bad
number costs no JAX import.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NoReturn

import numpy as np


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(float(v))


#: rule → (test, what is expected)
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int>=1": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "int>=0": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "even>=2": (lambda v: _is_int(v) and v >= 2 and v % 2 == 0, "an even integer >= 2"),
    ">0": (lambda v: _is_real(v) and v > 0, "a finite number > 0"),
    ">=0": (lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
    "[0,1)": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "[0,1]": (lambda v: _is_real(v) and 0 <= v <= 1, "a number in [0, 1]"),
}


def flag(name: str) -> str:
    """The command-line spelling of a field: ``d_model`` → ``--d-model``."""
    return "--" + name.replace("_", "-")


def fail(message: str) -> NoReturn:
    """Stop with a one-line message on stderr and exit status 1 (no traceback)."""
    raise SystemExit(message)


def check_options(args: Any, rules: dict[str, str]) -> None:
    """Check parsed options (a Namespace) against rules of :data:`CHECKS`; exit with one line if bad.

    A list value (``nargs="+"``) is checked element by element; None passes (an unset option).
    """
    for name, rule in rules.items():
        value = getattr(args, name)
        ok, expected = CHECKS[rule]
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and not ok(v):
                fail(f"{flag(name)}: expected {expected}, got {v!r}")
