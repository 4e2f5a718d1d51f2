"""The settings of one stream, checked when the stream is created.

Why checked up front: a stream runs for hours; a typo in a setting must fail at the first line,
not be ignored (TorchDEQ silently accepts unknown keywords) or surface frames later.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import SettingsError
from ..solvers import list_solvers, solver_options
from .budget import (
    BudgetSettings,
    FixedIterations,
    IterationController,
    TimeBudget,
    ToleranceIterations,
)
from .frames import PreprocessSettings
from .protocol import model_full_iters
from .shots import ShotSettings

#: "stream": Eq. 5, zeros on the first frame, then z_t[0] = z_{t-1}[M], M iterations a frame;
#: "baseline": every frame from zeros, N iterations; "keyframe": Eq. 4, the first frame solved
#: with N iterations, then M a frame; "reference": Eq. 3 (analysis), each frame starts from the
#: previous frame's full solve (N iterations from zeros, computed besides).
MODES = ("stream", "baseline", "keyframe", "reference")

#: M when none of iters, tol and budget_ms is given.
DEFAULT_ITERS = 4


@dataclass(frozen=True)
class StreamSettings:
    """How one stream is solved.

    Attributes:
        mode: one of ``MODES``.
        iters: M, iterations per frame (fixed budget). At most one of ``iters``, ``tol`` and
            ``budget_ms``; with none of them M = ``DEFAULT_ITERS``.
        tol: iterate each frame until the relative residual is below this, at most
            ``max_iter_cap`` iterations.
        budget_ms: a latency budget per frame; M adapts so the mean latency stays at it.
        max_iter_cap: the most iterations per frame under ``tol`` or ``budget_ms``
            (default N).
        full_iters: N, iterations of a full solve (baseline frames, keyframes, the reference
            solve); default ``model.config.f_thres``.
        solver: the solver's name (``streamdeq.solvers.list_solvers()``).
        solver_options: its method-specific settings, e.g. ``{"parity": True}``.
        measure_after: evaluate f once more at each frame's final state so ``residual_after``
            is exact (costs one evaluation per frame).
        diverge_residual: a final relative residual above this counts as divergence (besides
            NaN/Inf and the solver's own test); ``math.inf`` turns this threshold off.
        shots: shot-change detection and policy.
        preprocess: frame normalisation and padding.
        budget: tuning of the time-budget controller (only with ``budget_ms``).
    """

    mode: str = "stream"
    iters: int | None = None
    tol: float | None = None
    budget_ms: float | None = None
    max_iter_cap: int | None = None
    full_iters: int | None = None
    solver: str = "broyden"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    measure_after: bool = False
    diverge_residual: float = 100.0
    shots: ShotSettings = field(default_factory=ShotSettings)
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings)
    budget: BudgetSettings | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        _check_optional_int("iters", self.iters)
        _check_optional_int("max_iter_cap", self.max_iter_cap)
        _check_optional_int("full_iters", self.full_iters)
        _check_optional_positive("tol", self.tol)
        _check_optional_positive("budget_ms", self.budget_ms)
        if not (_is_real(self.diverge_residual) and self.diverge_residual > 0):
            raise SettingsError(
                f"diverge_residual must be a number > 0 (math.inf: off), got "
                f"{self.diverge_residual!r}"
            )
        if not isinstance(self.measure_after, bool):
            raise SettingsError(f"measure_after must be True or False, got {self.measure_after!r}")
        _check_type("shots", self.shots, ShotSettings)
        _check_type("preprocess", self.preprocess, PreprocessSettings)
        if self.budget is not None:
            _check_type("budget", self.budget, BudgetSettings)
        self._check_solver()
        self._check_iteration_control()

    def _check_solver(self) -> None:
        if self.solver not in list_solvers():
            raise SettingsError(
                f"unknown solver {self.solver!r}; choose one of {', '.join(list_solvers())}"
            )
        if not isinstance(self.solver_options, Mapping):
            raise SettingsError("solver_options must be a mapping of option names to values")
        valid = solver_options(self.solver)
        unknown = sorted(set(self.solver_options) - set(valid))
        if unknown:
            raise SettingsError(
                f"{self.solver}: unknown solver option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(sorted(valid)) or 'none'}"
            )
        object.__setattr__(self, "solver_options", dict(self.solver_options))

    def _check_iteration_control(self) -> None:
        given = [n for n in ("iters", "tol", "budget_ms") if getattr(self, n) is not None]
        if len(given) > 1:
            raise SettingsError(
                f"{' and '.join(given)} conflict: give one of iters (fixed M), tol (until the "
                "residual is below it) or budget_ms (a latency budget); with tol or budget_ms "
                "use max_iter_cap for the most iterations"
            )
        if self.mode == "baseline" and given:
            raise SettingsError(
                f"the baseline mode solves every frame from zeros with N = full_iters "
                f"iterations; {given[0]} applies to the stream, keyframe and reference modes"
            )
        if self.max_iter_cap is not None and self.tol is None and self.budget_ms is None:
            raise SettingsError(
                "max_iter_cap limits tol or budget_ms; with a fixed budget use iters alone"
            )
        if self.budget is not None and self.budget_ms is None:
            raise SettingsError("budget (the controller's tuning) needs budget_ms")

    @classmethod
    def from_options(cls, base: StreamSettings | None = None, **options: Any) -> StreamSettings:
        """``base`` (or the defaults) with ``options`` replaced, unknown names rejected.

        ``shot_policy="reset"`` is accepted as a shortcut for ``shots=ShotSettings(policy=...)``.
        """
        base = base or cls()
        if "shot_policy" in options:
            policy = options.pop("shot_policy")
            shots = options.get("shots", base.shots)
            if "shots" in options and shots.policy != policy:
                raise SettingsError(
                    f"shot_policy={policy!r} conflicts with shots=ShotSettings(policy="
                    f"{shots.policy!r}); give the policy once"
                )
            options["shots"] = replace(shots, policy=policy)
        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, [*known, "shot_policy"], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SettingsError(
                    f"unknown stream setting {name!r}{hint}; valid settings: "
                    f"{', '.join([*known, 'shot_policy'])}"
                )
        return replace(base, **options)

    def full_iters_for(self, model: object) -> int:
        """N for ``model``: ``full_iters`` if set, else the model's ``config.f_thres``."""
        if self.full_iters is not None:
            return self.full_iters
        n = model_full_iters(model)
        if n is None or n < 1:
            raise SettingsError(
                "the model does not declare config.f_thres (N, its full-solve iterations); "
                "pass full_iters"
            )
        return n

    def controller(self, model: object) -> IterationController:
        """A fresh iteration controller for a stream of ``model`` with these settings."""
        if self.tol is not None:
            return ToleranceIterations(self.tol, self._cap(model))
        if self.budget_ms is not None:
            return TimeBudget(self.budget_ms, self._cap(model), self.budget)
        if self.mode == "baseline":
            return FixedIterations(self.full_iters_for(model))
        return FixedIterations(self.iters if self.iters is not None else DEFAULT_ITERS)

    def _cap(self, model: object) -> int:
        return self.max_iter_cap if self.max_iter_cap is not None else self.full_iters_for(model)


def _check_optional_int(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{name} must be an integer >= 1 or None, got {value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_optional_positive(name: str, value: object) -> None:
    if value is None:
        return
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise SettingsError(f"{name} must be a finite number > 0 or None, got {value!r}")


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise SettingsError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
