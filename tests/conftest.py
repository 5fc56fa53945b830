"""Shared test setup: float64 on (before anything imports JAX arrays), Hypothesis profiles, and
random-system fixtures.

Everything here is cheap: no JIT compilation and no large arrays at import or fixture time.
Hypothesis runs the ``quick`` profile (20 examples per property) unless ``S4LITE_HYPOTHESIS=thorough``
(200 examples) is set; tests that pass their own ``max_examples`` keep it.
"""

import os

# Faster XLA compilation for the tests (set before JAX starts its CPU backend; subprocesses inherit
# it). Most of the suite's time is compiling many small programs, not running them:
# * LLVM's -O0 without its expensive passes compiles them about 20-30 % faster;
# * XLA's older loop emitters instead of its MLIR fusion emitters halve the compile time again, and
#   codegen in one piece (split count 1) spares thread hand-offs on a small machine.
# No fast-math and no change to the HLO (the same operations in the same order); elementary functions
# (exp, log, sin, ...) may round differently in the last bit, as on another CPU. Every tolerance stays
# as it is. Set S4LITE_TEST_XLA_OPT=1 to test with XLA's default compilation instead.
if os.environ.get("S4LITE_TEST_XLA_OPT") != "1":
    _FAST = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
             " --xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1")
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FAST).strip()

# One persistent compilation cache for the whole test run (set before JAX reads its config): the
# xdist workers and the CLI subprocesses the tests start inherit the environment, so a program that
# one of them compiled (the same HLO, the same flags) is loaded, not compiled again, by the others
# (and by the same process when a test builds a new jitted closure of the same program).
# The first pytest process of a run (the xdist controller, or a plain `pytest`) makes a fresh, empty
# directory and deletes it at the end (`pytest_unconfigure`), so every run starts cold, as a fresh
# clone does. A loaded executable is the one XLA compiled from the same program: results are
# unchanged. S4LITE_TEST_NO_CACHE=1 turns it off; S4LITE_TEST_CACHE_DIR=<dir> uses (and keeps) <dir>.
_CACHE_ENV = "S4LITE_TEST_CACHE_DIR"
_OWNED_CACHE: str | None = None
if os.environ.get("S4LITE_TEST_NO_CACHE") != "1":
    import tempfile

    if not os.environ.get(_CACHE_ENV):
        _OWNED_CACHE = os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="s4lite-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_CACHE_ENV]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("quick", max_examples=20, **_COMMON)
settings.register_profile("thorough", max_examples=200, **_COMMON)
settings.load_profile(os.environ.get("S4LITE_HYPOTHESIS", "quick"))


def random_stable_system(
    rng: np.random.Generator, N: int, margin: float = 0.1, complex_: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""A random SISO system ``(A (N,N), B (N,), C (N,))`` with :math:`\max \operatorname{Re}\lambda(A) = -\text{margin}`.

    A Gaussian matrix (entries of variance 1/N) shifted by a multiple of I so that its rightmost
    eigenvalue sits exactly ``margin`` to the left of the imaginary axis.
    """
    M = rng.standard_normal((N, N)) / np.sqrt(N)
    B = rng.standard_normal(N)
    C = rng.standard_normal(N)
    if complex_:
        M = M + 1j * rng.standard_normal((N, N)) / np.sqrt(N)
        B = B + 1j * rng.standard_normal(N)
        C = C + 1j * rng.standard_normal(N)
    shift = np.max(np.linalg.eigvals(M).real) + margin
    return M - shift * np.eye(N), B, C


def random_dplr(
    rng: np.random.Generator, N: int, r: int = 1, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""A random DPLR system ``(Lambda (N,), P (r,N), Q (r,N), B (N,), C (N,))``, all complex128.

    ``Lambda`` has real parts in [−1.5, −margin]; P, Q are small (scale 0.3/√N) so that
    ``diag(Lambda) − PᵀQ̄`` stays comfortably stable for the sizes used in the tests.
    """
    Lambda = -rng.uniform(margin, 1.5, N) + 1j * rng.uniform(-3.0, 3.0, N)
    scale = 0.3 / np.sqrt(N)
    P = scale * (rng.standard_normal((r, N)) + 1j * rng.standard_normal((r, N)))
    Q = scale * (rng.standard_normal((r, N)) + 1j * rng.standard_normal((r, N)))
    B = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    C = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    return Lambda, P, Q, B, C


def rel_err(a, b) -> float:
    """max |a − b| / max |b| (both converted to NumPy)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, fixed-seed generator per test (tests do not depend on each other's draws)."""
    return np.random.default_rng(20220125)


@pytest.fixture(scope="session")
def stable_system() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The factory :func:`random_stable_system` (session-scoped so Hypothesis tests may use it)."""
    return random_stable_system


@pytest.fixture(scope="session")
def dplr_system() -> Callable[..., tuple[np.ndarray, ...]]:
    """The factory :func:`random_dplr`."""
    return random_dplr


@pytest.fixture(scope="session")
def relerr() -> Callable[..., float]:
    """The function :func:`rel_err` (max |a − b| / max |b|)."""
    return rel_err


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache in a temporary directory, for one test module.

    Tests that call ``fit``/``main`` many times build new jitted closures; with the cache,
    identical programs are compiled once and later runs load the executable (same HLO → same
    executable, so results are unchanged). Restored afterwards. Use it with
    ``pytestmark = pytest.mark.usefixtures("compilation_cache")``. With the run-wide cache (the
    default, see the top of this file) it does nothing: the module already shares that one.
    """
    if os.environ.get("S4LITE_TEST_NO_CACHE") != "1":
        yield
        return
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")  # fmt: skip
    saved = {n: getattr(jax.config, n) for n in names}
    cc.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    cc.reset_cache()
    for n, v in saved.items():
        jax.config.update(n, v)


def pytest_unconfigure(config) -> None:
    """Delete the run-wide compilation cache (only in the process that made it)."""
    if _OWNED_CACHE is not None:
        import shutil

        shutil.rmtree(_OWNED_CACHE, ignore_errors=True)
