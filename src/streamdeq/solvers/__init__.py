"""Fixed-point solvers behind one signature, selectable by name.

>>> result = solve(f, z0, (injection,), method="broyden", max_iter=8)
>>> result.z, result.abs_trace, result.status

Every solver takes a warm start ``z0`` (a list of batch-first tensors, or None for zeros shaped
like ``like``), an iteration budget ``max_iter`` and an optional tolerance, and returns a
:class:`SolverResult` with per-sample residual traces. Solvers know nothing about images: any f
over lists of tensors works.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..plugins import load_plugins
from ..registry import Registry
from ..validation import check_choice, check_int, check_real, check_solver_options
from .anderson import anderson
from .base import (
    FixedPointFn,
    SolverResult,
    SolverSettingsError,
    SolverStatus,
    State,
    residual_norms,
    zeros_like_state,
)
from .broyden import BroydenMemory, broyden
from .fixed_point import fixed_point

SOLVERS: Registry[Callable[..., SolverResult]] = Registry(
    "solver", error=SolverSettingsError, loader=load_plugins
)
STOP_MODES = ("abs", "rel")
_COMMON = {"f", "z0", "args", "max_iter", "tol", "stop_mode"}


def register_solver(
    name: str, solver: Callable[..., SolverResult], *, overwrite: bool = False
) -> Callable[..., SolverResult]:
    """Make ``solver`` available as ``solve(..., method=name)``, to the stream engine
    (``StreamDEQ(solver=name)``) and to ``streamdeq run --solver``.

    A solver is a function ``solver(f, z0, args, *, max_iter, tol, stop_mode, **settings) ->
    SolverResult`` (see :mod:`.fixed_point` for the simplest one); its own keyword settings
    and their defaults are read from its signature (:func:`solver_options`), so unknown
    settings are rejected before it runs.
    """
    return SOLVERS.register(name, solver, overwrite=overwrite)


register_solver("broyden", broyden)
register_solver("anderson", anderson)
register_solver("fixed_point", fixed_point)


def list_solvers() -> list[str]:
    return SOLVERS.names(sort=True)


def solver_options(method: str) -> dict[str, object]:
    """The method-specific settings of a solver and their defaults."""
    fn = _lookup(method)
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name not in _COMMON
    }


def solve(
    f: FixedPointFn,
    z0: State | None,
    args: Sequence = (),
    *,
    method: str = "broyden",
    max_iter: int,
    tol: float | None = None,
    stop_mode: str = "rel",
    like: Sequence[Tensor] | None = None,
    **options: object,
) -> SolverResult:
    """Find z = f(z, *args) with the solver called ``method``.

    Args:
        f: maps a state (list of (B, ...) tensors) and ``args`` to a state of the same shapes.
            It must treat batch rows independently: the solver calls it on subsets of rows.
        z0: warm start, or None to start from zeros shaped like ``like``.
        args: extra batch-first arguments of f (tensors, lists of tensors or None); sliced
            together with z when only some rows are still being solved.
        max_iter: iteration budget M (>= 1).
        tol: stop a sample once its residual is below this; None = fixed budget (no
            device->host synchronisation during the solve).
        stop_mode: "abs" (||f(z) - z||) or "rel" (||f(z) - z|| / ||f(z)||) for ``tol``.
        options: method-specific settings (see :func:`solver_options`); unknown ones are
            rejected.

    The iterations run without recording a graph (even under grad mode, with an f whose
    parameters require grad): a forward solve never needs one, and storing every iterate's
    graph would cost memory linear in ``max_iter``. The answer ``result.z`` therefore has no
    gradient; for gradients through the fixed point use :func:`streamdeq.deq.equilibrium`,
    which attaches them afterwards (implicit differentiation or phantom gradients).
    """
    fn = _lookup(method)
    check_solver_options(
        method, options, solver_options(method), noun="setting", error=SolverSettingsError
    )
    check_int("max_iter", max_iter, error=SolverSettingsError)
    check_real("tol", tol, exclusive_minimum=0, optional=True, error=SolverSettingsError)
    check_choice("stop_mode", stop_mode, STOP_MODES, error=SolverSettingsError)
    if z0 is None:
        if like is None:
            raise SolverSettingsError("z0=None needs like= (tensors giving the state's shapes)")
        z0 = zeros_like_state(like)
    if not isinstance(args, (tuple, list)):
        raise SolverSettingsError("args must be a tuple of f's extra arguments")
    z0 = list(z0)
    if not z0:
        raise SolverSettingsError("the state z0 is an empty list")
    with torch.no_grad():
        return fn(f, z0, tuple(args), max_iter=max_iter, tol=tol, stop_mode=stop_mode, **options)


def _lookup(method: str) -> Callable[..., SolverResult]:
    if method not in SOLVERS:
        listing = ", ".join(list_solvers())
        raise SolverSettingsError(f"unknown solver {method!r}; choose one of {listing}")
    return SOLVERS.get(method)


__all__ = [
    "SOLVERS",
    "STOP_MODES",
    "BroydenMemory",
    "FixedPointFn",
    "SolverResult",
    "SolverSettingsError",
    "SolverStatus",
    "State",
    "anderson",
    "broyden",
    "fixed_point",
    "list_solvers",
    "register_solver",
    "residual_norms",
    "solve",
    "solver_options",
]
