"""Argument checks shared by every public function.

Each check raises ``ValueError`` that names the argument and says what was expected, so that a
reader sees *their* mistake instead of a shape error from deep inside JAX. Checks only look at
shapes and at concrete (non-traced) values, so they work unchanged under ``jax.jit``/``vmap``/``grad``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
F = TypeVar("F", bound=Callable[..., Any])


def as_array(name: str, x: Any) -> Array:
    """Turn ``x`` into a JAX array, or raise ``ValueError`` naming ``name``."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:  # pragma: no cover - message path
        raise ValueError(f"{name}: expected an array of numbers, got {type(x).__name__}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def square_matrix(name: str, A: Any) -> Array:
    """``A`` must be a square 2-D matrix ``(N, N)`` with ``N >= 1``."""
    A = as_array(name, A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"{name}: expected a square matrix of shape (N, N), got shape {A.shape}")
    return A


def vector(name: str, x: Any, n: int | None = None, what: str = "N") -> Array:
    """``x`` must be 1-D; if ``n`` is given its length must be ``n`` (called ``what`` in the message)."""
    x = as_array(name, x)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a vector of shape ({what},), got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name}: expected length {what}={n}, got shape {x.shape}")
    return x


def low_rank(name: str, P: Any, n: int) -> Array:
    """``P`` is a rank-1 factor ``(N,)`` or a rank-r factor ``(r, N)``; returned as ``(r, N)``."""
    P = as_array(name, P)
    if P.ndim == 1:
        P = P[None, :]
    if P.ndim != 2 or P.shape[1] != n:
        raise ValueError(f"{name}: expected shape (N,) or (r, N) with N={n}, got shape {P.shape}")
    return P


def dplr(l_name: str, Lambda: Any, p_name: str, P: Any, q_name: str, Q: Any) -> tuple[Array, Array, Array]:
    """A DPLR triple: ``Lambda (N,)``, and ``P``, ``Q`` of the same shape ``(N,)`` or ``(r, N)`` (returned ``(r, N)``)."""
    Lambda = vector(l_name, Lambda)
    n = Lambda.shape[0]
    P = low_rank(p_name, P, n)
    Q = low_rank(q_name, Q, n)
    if P.shape != Q.shape:
        raise ValueError(f"{q_name}: expected the shape of {p_name} {P.shape}, got {Q.shape}")
    return Lambda, P, Q


def is_concrete(x: Any) -> bool:
    """True when ``x`` has a value now (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def positive(name: str, value: Any) -> Any:
    """A scalar (or array of) step size(s) that must be finite and > 0 when its value is known."""
    arr = as_array(name, value)
    if is_concrete(arr):
        v = np.asarray(arr)
        if np.iscomplexobj(v) or not np.all(np.isfinite(v)) or not np.all(v > 0):
            raise ValueError(f"{name}: expected a finite real number > 0, got {v!r}")
    return value


def step_size(name: str, value: Any) -> Any:
    """A scalar step size Δ: 0-d, finite and > 0 when its value is known."""
    arr = as_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a scalar, got shape {arr.shape}")
    return positive(name, value)


def length(name: str, L: Any) -> int:
    """A sequence length: a Python/NumPy integer >= 1."""
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= 1, got {L!r}")
    if L < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {L}")
    return int(L)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """``value`` must be one of ``options``."""
    if not isinstance(value, str) or value.lower() not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value.lower()


def scalar(name: str, value: Any) -> Array:
    """A 0-d number (a feed-through term ``D``, say)."""
    arr = as_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a scalar, got shape {arr.shape}")
    return arr


def float_dtype(*xs: Any) -> Any:
    """The common dtype of ``xs``, promoted to floating point if integer or bool."""
    dtype = jnp.result_type(*xs)
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.result_type(float)


def real_dtype(dtype: Any) -> Any:
    """The real dtype of the same precision (``complex128`` → ``float64``)."""
    return jnp.real(jnp.zeros((), dtype)).dtype


def function(name: str, f: Any, what: str = "a function") -> Any:
    """``f`` must be callable."""
    if not callable(f):
        raise ValueError(f"{name}: expected {what}, got {type(f).__name__}")
    return f


def checked(validate: Callable[..., tuple]) -> Callable[[F], F]:
    """Decorator that keeps argument checks out of a function's body.

    ``validate`` takes the same arguments as the decorated function, raises ``ValueError`` naming
    the offending argument, and returns the *checked* arguments as a tuple in the function's own
    positional order (converted to arrays, dtypes promoted, defaults filled in). The body then
    receives clean inputs and can read like the equation it implements::

        def _scan_ssm_args(Ab, Bb, C, u, x0=None):
            ...  # checks
            return Ab, Bb, C, u, x0

        @checked(_scan_ssm_args)
        def scan_ssm(Ab, Bb, C, u, x0=None):
            ...  # the recurrence, nothing else
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def with_checks(*args: Any, **kwargs: Any) -> Any:
            return fn(*validate(*args, **kwargs))

        with_checks.validate = validate  # type: ignore[attr-defined]
        return with_checks  # type: ignore[return-value]

    return decorate
