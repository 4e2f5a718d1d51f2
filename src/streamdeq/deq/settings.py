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
from ..solvers import (
    STOP_MODES,
    SolverResult,
    SolverSettingsError,
    list_solvers,
    solver_options,
)
from ..validation import check_choice, check_int, check_real, check_solver_options

#: "implicit": implicit differentiation (adjoint fixed point); "phantom": backprop through a few
#: damped steps from the fixed point; "none": the fixed point is returned without a gradient.
BACKWARD_MODES = ("implicit", "phantom", "none")


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
        check_choice(
            "mode", self.mode, BACKWARD_MODES, label="backward mode", error=DEQSettingsError
        )
        if self.solver not in list_solvers():
            raise DEQSettingsError(
                f"unknown backward solver {self.solver!r}; choose one of "
                f"{', '.join(list_solvers())}"
            )
        check_int("max_iter", self.max_iter, error=DEQSettingsError)
        check_int("phantom_steps", self.phantom_steps, error=DEQSettingsError)
        check_real(
            "tol",
            self.tol,
            exclusive_minimum=0,
            optional=True,
            label="backward tol",
            error=DEQSettingsError,
        )
        check_choice(
            "stop_mode",
            self.stop_mode,
            STOP_MODES,
            label="backward stop_mode",
            error=DEQSettingsError,
        )
        check_real(
            "phantom_damping",
            self.phantom_damping,
            exclusive_minimum=0,
            maximum=1,
            error=DEQSettingsError,
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


def _check_solver_options(method: str, options: Mapping[str, Any]) -> None:
    try:
        valid = solver_options(method)
    except SolverSettingsError as err:
        raise DEQSettingsError(str(err), field="solver") from None
    check_solver_options(
        method,
        options,
        valid,
        noun="option",
        where="backward solver ",
        error=DEQSettingsError,
    )
