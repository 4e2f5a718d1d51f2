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

from torch import Tensor

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

SOLVERS: dict[str, Callable[..., SolverResult]] = {
    "broyden": broyden,
    "anderson": anderson,
    "fixed_point": fixed_point,
}
STOP_MODES = ("abs", "rel")
_COMMON = {"f", "z0", "args", "max_iter", "tol", "stop_mode"}


def list_solvers() -> list[str]:
    return sorted(SOLVERS)


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
    """
    fn = _lookup(method)
    _check_options(method, options)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise SolverSettingsError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if tol is not None and not tol > 0:
        raise SolverSettingsError(f"tol must be > 0 or None, got {tol!r}")
    if stop_mode not in STOP_MODES:
        raise SolverSettingsError(f"stop_mode must be one of {STOP_MODES}, got {stop_mode!r}")
    if z0 is None:
        if like is None:
            raise SolverSettingsError("z0=None needs like= (tensors giving the state's shapes)")
        z0 = zeros_like_state(like)
    if not isinstance(args, (tuple, list)):
        raise SolverSettingsError("args must be a tuple of f's extra arguments")
    z0 = list(z0)
    if not z0:
        raise SolverSettingsError("the state z0 is an empty list")
    return fn(f, z0, tuple(args), max_iter=max_iter, tol=tol, stop_mode=stop_mode, **options)


def _lookup(method: str) -> Callable[..., SolverResult]:
    try:
        return SOLVERS[method]
    except KeyError:
        raise SolverSettingsError(
            f"unknown solver {method!r}; choose one of {', '.join(list_solvers())}"
        ) from None


def _check_options(method: str, options: dict[str, object]) -> None:
    valid = solver_options(method)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        known = ", ".join(sorted(valid)) or "none"
        raise SolverSettingsError(
            f"{method}: unknown setting(s) {', '.join(unknown)}; valid settings: {known}"
        )


__all__ = [
    "SOLVERS",
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
    "residual_norms",
    "solve",
    "solver_options",
]
