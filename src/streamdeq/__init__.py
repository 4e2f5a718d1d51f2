"""streamdeq: streaming multiscale deep equilibrium models for online video perception."""

from __future__ import annotations

from .solvers import SolverResult, SolverStatus, list_solvers, solve

__version__ = "0.1.0"

__all__ = ["SolverResult", "SolverStatus", "__version__", "list_solvers", "solve"]
