"""gilbench host side: versions, sources, builds, matrices, runs, reports."""

__version__ = "0.1.0"
