"""The JAX timer the benchmarks import from here (see :mod:`s4lite.viz.common`)."""

from .common import time_fn

__all__ = ["time_fn"]
