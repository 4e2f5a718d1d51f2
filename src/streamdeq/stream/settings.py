"""The settings of one stream, checked when the stream is created.

Why checked up front: a stream runs for hours; a typo in a setting must fail at the first line,
not be ignored (TorchDEQ silently accepts unknown keywords) or surface frames later.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any

from .._deprecated import renamed_keyword
from ..errors import SettingsError
from ..solvers import list_solvers, solver_options
from ..validation import check_choice, check_int, check_real, check_solver_options
from .budget import (
    BudgetSettings,
    FixedIterations,
    IterationController,
    TimeBudget,
    ToleranceIterations,
)
from .frames import PreprocessSettings
from .protocol import model_f_thres, model_normalisation
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
        f_thres: N, iterations of a full solve (baseline frames, keyframes, the reference
            solve); default ``model.config.f_thres``. Its old name ``full_iters`` is still
            accepted (constructor, ``from_options``), with a DeprecationWarning.
        solver: the solver's name (``streamdeq.solvers.list_solvers()``).
        solver_options: its method-specific settings, e.g. ``{"parity": True}``.
        measure_after: evaluate f once more at each frame's final state so ``residual_after``
            is exact (costs one evaluation per frame).
        diverge_residual: a final relative residual above this counts as divergence (besides
            NaN/Inf and the solver's own test); ``math.inf`` turns this threshold off.
        shots: shot-change detection and policy.
        preprocess: frame normalisation and padding; None (default): the normalisation the
            model's weights were trained with (``model.pretrained_info``), ImageNet's when the
            model does not say (:meth:`preprocess_for`).
        budget: tuning of the time-budget controller (only with ``budget_ms``).
    """

    mode: str = "stream"
    iters: int | None = None
    tol: float | None = None
    budget_ms: float | None = None
    max_iter_cap: int | None = None
    f_thres: int | None = None
    solver: str = "broyden"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    measure_after: bool = False
    diverge_residual: float = 100.0
    shots: ShotSettings = field(default_factory=ShotSettings)
    preprocess: PreprocessSettings | None = None
    budget: BudgetSettings | None = None
    full_iters: InitVar[int | None] = None  # the deprecated name of f_thres

    def __post_init__(self, full_iters: int | None) -> None:
        if full_iters is not None:
            n = renamed_keyword("full_iters", "f_thres", full_iters, self.f_thres, stacklevel=3)
            object.__setattr__(self, "f_thres", n)
        check_choice("mode", self.mode, MODES)
        check_int("iters", self.iters, optional=True)
        check_int("max_iter_cap", self.max_iter_cap, optional=True)
        check_int("f_thres", self.f_thres, optional=True)
        check_real("tol", self.tol, exclusive_minimum=0, optional=True)
        check_real("budget_ms", self.budget_ms, exclusive_minimum=0, optional=True)
        check_real(
            "diverge_residual",
            self.diverge_residual,
            exclusive_minimum=0,
            finite=False,
            note=" (math.inf: off)",
        )
        if not isinstance(self.measure_after, bool):
            raise SettingsError(f"measure_after must be True or False, got {self.measure_after!r}")
        _check_type("shots", self.shots, ShotSettings)
        if self.preprocess is not None:
            _check_type("preprocess", self.preprocess, PreprocessSettings)
        if self.budget is not None:
            _check_type("budget", self.budget, BudgetSettings)
        self._check_solver()
        self._check_iteration_control()

    def _check_solver(self) -> None:
        if self.solver not in list_solvers():
            raise SettingsError(
                f"unknown solver {self.solver!r}; choose one of {', '.join(list_solvers())}",
                field="solver",
            )
        options = check_solver_options(
            self.solver, self.solver_options, solver_options(self.solver)
        )
        object.__setattr__(self, "solver_options", options)

    def _check_iteration_control(self) -> None:
        given = [n for n in ("iters", "tol", "budget_ms") if getattr(self, n) is not None]
        if len(given) > 1:
            raise SettingsError(
                f"{' and '.join(given)} conflict: give one of iters (fixed M), tol (until the "
                "residual is below it) or budget_ms (a latency budget); with tol or budget_ms "
                "use max_iter_cap for the most iterations",
                field=given[0],
            )
        if self.mode == "baseline" and given:
            raise SettingsError(
                f"the baseline mode solves every frame from zeros with N = f_thres "
                f"iterations; {given[0]} applies to the stream, keyframe and reference modes",
                field=given[0],
            )
        if self.max_iter_cap is not None and self.tol is None and self.budget_ms is None:
            raise SettingsError(
                "max_iter_cap limits tol or budget_ms; with a fixed budget use iters alone",
                field="max_iter_cap",
            )
        if self.budget is not None and self.budget_ms is None:
            raise SettingsError("budget (the controller's tuning) needs budget_ms", field="budget")

    @classmethod
    def from_options(cls, base: StreamSettings | None = None, **options: Any) -> StreamSettings:
        """``base`` (or the defaults) with ``options`` replaced, unknown names rejected.

        ``shot_policy="reset"`` is accepted as a shortcut for ``shots=ShotSettings(policy=...)``.
        """
        base = base or cls()
        if "full_iters" in options:  # the deprecated name of f_thres
            options["f_thres"] = renamed_keyword(
                "full_iters",
                "f_thres",
                options.pop("full_iters"),
                options.get("f_thres"),
                stacklevel=3,
            )
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
        return replace(base, **_with_iteration_control_replaced(options))

    def f_thres_for(self, model: object) -> int:
        """N for ``model``: ``f_thres`` if set, else the model's ``config.f_thres``."""
        if self.f_thres is not None:
            return self.f_thres
        n = model_f_thres(model)
        if n is None or n < 1:
            raise SettingsError(
                "the model does not declare config.f_thres (N, its full-solve iterations); "
                "pass f_thres"
            )
        return n

    def preprocess_for(self, model: object) -> PreprocessSettings:
        """How frames of ``model``'s streams are prepared: ``preprocess`` if set, else the
        defaults with the mean and std the model's weights were trained with (weights fed
        another normalisation than their training's give confident nonsense)."""
        if self.preprocess is not None:
            return self.preprocess
        normalisation = model_normalisation(model)
        if normalisation is None:
            return PreprocessSettings()
        mean, std = normalisation
        return PreprocessSettings(mean=mean, std=std)

    def controller(self, model: object) -> IterationController:
        """A fresh iteration controller for a stream of ``model`` with these settings."""
        if self.tol is not None:
            return ToleranceIterations(self.tol, self._cap(model))
        if self.budget_ms is not None:
            return TimeBudget(self.budget_ms, self._cap(model), self.budget)
        if self.mode == "baseline":
            return FixedIterations(self.f_thres_for(model))
        return FixedIterations(self.iters if self.iters is not None else DEFAULT_ITERS)

    def _cap(self, model: object) -> int:
        return self.max_iter_cap if self.max_iter_cap is not None else self.f_thres_for(model)


def _with_iteration_control_replaced(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus ``None`` for the base's iteration control that they replace.

    Why: iters, tol and budget_ms are three ways of saying one thing, so giving one of them
    (or the baseline mode, which has its own N) replaces the base's choice as any setting
    replaces its default: ``StreamBatch(model, iters=2).add_stream("b", tol=1e-2)`` is a
    stream with a tolerance, not a conflict. Given together, they still conflict."""
    chosen = [name for name in ("iters", "tol", "budget_ms") if options.get(name) is not None]
    if not chosen and options.get("mode") != "baseline":
        return options
    cleared: dict[str, Any] = {"iters": None, "tol": None, "budget_ms": None}
    if "budget_ms" not in chosen:
        cleared["budget"] = None  # the time-budget controller's tuning
    if "tol" not in chosen and "budget_ms" not in chosen:
        cleared["max_iter_cap"] = None  # caps tol or budget_ms only
    return {**cleared, **options}


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise SettingsError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
