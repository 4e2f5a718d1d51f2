"""How gradients flow through a fixed point: the settings of the backward pass, checked up front.

Why a dataclass checked at construction: the backward pass runs long after the forward (inside
``loss.backward()``), and an invalid solver name or a typo in its options found only then would
cost a whole forward pass and surface far from where it was written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import SettingsError
from ..solvers import SolverResult, SolverSettingsError, list_solvers, solver_options

#: "implicit": implicit differentiation (adjoint fixed point); "phantom": backprop through a few
#: damped steps from the fixed point; "none": the fixed point is returned without a gradient.
BACKWARD_MODES = ("implicit", "phantom", "none")
STOP_MODES = ("abs", "rel")


class DEQSettingsError(SettingsError):
    """An unknown or out-of-range setting of the DEQ layer."""


@dataclass(frozen=True)
class BackwardSettings:
    """The gradient of a DEQ layer.

    Attributes:
        mode: one of ``BACKWARD_MODES``.
        solver: the solver of the adjoint fixed point y = J_f(z*)^T y + g (implicit mode).
        max_iter: its iteration budget (the official MDEQ B_THRES, 30 in its configs).
        tol: its tolerance (None: always run ``max_iter`` iterations without host syncs; the
            official eps of 2e-10 * sqrt(numel) practically never stops early either).
        stop_mode: "abs" or "rel" residual for ``tol`` ("abs" as in the official code).
        solver_options: method-specific options of ``solver`` (e.g. {"memory": 27}).
        phantom_steps: k, damped steps unrolled from z* in phantom mode (>= 1).
        phantom_damping: tau in (0, 1] of the phantom step z <- (1 - tau) z + tau f(z).
        on_adjoint: called with the adjoint solve's ``SolverResult`` after every implicit
            backward, to monitor its residual and status (e.g. log it to a dashboard).
    """

    mode: str = "implicit"
    solver: str = "broyden"
    max_iter: int = 30
    tol: float | None = None
    stop_mode: str = "abs"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    phantom_steps: int = 1
    phantom_damping: float = 1.0
    on_adjoint: Callable[[SolverResult], None] | None = None

    def __post_init__(self) -> None:
        if self.mode not in BACKWARD_MODES:
            raise DEQSettingsError(
                f"backward mode must be one of {', '.join(BACKWARD_MODES)}, got {self.mode!r}"
            )
        if self.solver not in list_solvers():
            raise DEQSettingsError(
                f"unknown backward solver {self.solver!r}; choose one of "
                f"{', '.join(list_solvers())}"
            )
        _check_positive_int("max_iter", self.max_iter)
        _check_positive_int("phantom_steps", self.phantom_steps)
        if self.tol is not None and not (_is_number(self.tol) and self.tol > 0):
            raise DEQSettingsError(f"backward tol must be > 0 or None, got {self.tol!r}")
        if self.stop_mode not in STOP_MODES:
            raise DEQSettingsError(
                f"backward stop_mode must be one of {STOP_MODES}, got {self.stop_mode!r}"
            )
        if not (_is_number(self.phantom_damping) and 0.0 < self.phantom_damping <= 1.0):
            raise DEQSettingsError(
                f"phantom_damping must be in (0, 1], got {self.phantom_damping!r}"
            )
        if self.on_adjoint is not None and not callable(self.on_adjoint):
            raise DEQSettingsError("on_adjoint must be a callable taking a SolverResult")
        _check_solver_options(self.solver, self.solver_options)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BackwardSettings:
        """Settings from a config mapping; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DEQSettingsError(
                f"unknown backward setting(s) {', '.join(unknown)}; "
                f"valid settings: {', '.join(sorted(known))}"
            )
        return cls(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DEQSettingsError(f"{name} must be an integer >= 1, got {value!r}")


def _check_solver_options(method: str, options: Mapping[str, Any]) -> None:
    if not isinstance(options, Mapping):
        raise DEQSettingsError(f"solver_options must be a mapping, got {type(options).__name__}")
    try:
        valid = solver_options(method)
    except SolverSettingsError as err:
        raise DEQSettingsError(str(err)) from None
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DEQSettingsError(
            f"backward solver {method}: unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )
