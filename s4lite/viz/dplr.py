"""Shared helpers the chapters import from here (see :mod:`s4lite.viz.common`)."""

from .common import find_artifact, rel_err

__all__ = ["find_artifact", "rel_err"]
