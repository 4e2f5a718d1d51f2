"""How many solver iterations a frame gets: the iteration controllers.

Three controllers, one per way of asking:

* :class:`FixedIterations` — M iterations every frame (the paper's setting);
* :class:`ToleranceIterations` — iterate until the relative residual falls below ``tol``, at most
  a cap;
* :class:`TimeBudget` — a latency budget in milliseconds per frame ("dynamic time budgeting"):
  it learns the cost of one f evaluation and the fixed per-frame cost online and chooses M so
  that the *mean* latency stays at the budget when the machine gets slower or faster.

The engine asks a controller for a plan before each frame and tells it afterwards what the frame
cost; controllers never measure time themselves, so a test can feed them any timings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ..errors import SettingsError
from ..validation import check_int, check_real


@dataclass(frozen=True)
class IterationPlan:
    """The solver budget of one frame: ``max_iter`` iterations, or fewer once the relative
    residual is below ``tol`` (None: always ``max_iter``, with no host synchronisation)."""

    max_iter: int
    tol: float | None = None


@dataclass(frozen=True)
class FrameTiming:
    """What a frame cost, as measured by the engine.

    Attributes:
        latency_ms: the whole step, frame in to output out.
        solve_ms: the part spent in the solver (f evaluations and the solver's own work).
        evals: evaluations of f for this frame.
        iters: solver iterations of this frame.
    """

    latency_ms: float
    solve_ms: float
    evals: int
    iters: int


class IterationController(Protocol):
    def plan(self) -> IterationPlan:
        """The budget of the next frame."""
        ...

    def observe(self, timing: FrameTiming) -> None:
        """What the last frame cost."""
        ...


class FixedIterations:
    """M iterations every frame."""

    def __init__(self, iters: int) -> None:
        self._plan = IterationPlan(max_iter=iters)

    def plan(self) -> IterationPlan:
        return self._plan

    def observe(self, timing: FrameTiming) -> None:
        pass


class ToleranceIterations:
    """Iterate until the relative residual is below ``tol``, at most ``cap`` iterations."""

    def __init__(self, tol: float, cap: int) -> None:
        self._plan = IterationPlan(max_iter=cap, tol=tol)

    def plan(self) -> IterationPlan:
        return self._plan

    def observe(self, timing: FrameTiming) -> None:
        pass


@dataclass(frozen=True)
class BudgetSettings:
    """Tuning of :class:`TimeBudget`.

    Attributes:
        smoothing: weight of the newest measurement in the running (EWMA) cost estimates; higher
            follows a change of machine speed faster, lower is steadier.
        payback: the fraction of the accumulated over- or under-spend (a leaky sum of
            ``budget - latency``) added to the next frame's target, so the mean latency comes
            back to the budget after frames that cost more than planned (keyframes, boosts).
            The correction is limited to half a budget either way.
        min_iters: never plan fewer iterations than this (>= 1).
    """

    smoothing: float = 0.2
    payback: float = 0.1
    min_iters: int = 1

    def __post_init__(self) -> None:
        check_real(
            "smoothing", self.smoothing, exclusive_minimum=0, maximum=1, label="budget smoothing"
        )
        check_real("payback", self.payback, minimum=0, exclusive_maximum=1, label="budget payback")
        check_int("min_iters", self.min_iters, label="budget min_iters")


class TimeBudget:
    """Choose M per frame so that the mean latency stays at ``budget_ms``.

    The cost model: latency(M) = overhead + ms_per_eval * (M + extra_evals), where ``overhead``
    (preprocessing, injection, head) and ``ms_per_eval`` (one f evaluation with the solver's
    own work, the solve time divided by the evaluations) are running averages of what the
    engine measures, and ``extra_evals`` the evaluations a frame makes beyond its iterations
    (0 for efficient Broyden and fixed point, 1 in Broyden's parity mode, N for the reference
    scheme's full solve). The fractional M the model asks for is dithered (error diffusion), so
    2.5 becomes 2, 3, 2, 3 ... and the mean, not just the worst frame, meets the budget.

    Before the first measurement the controller plans ``min_iters``.
    """

    def __init__(self, budget_ms: float, max_iters: int, settings: BudgetSettings | None = None):
        check_real("budget_ms", budget_ms, exclusive_minimum=0)
        self.settings = settings or BudgetSettings()
        if max_iters < self.settings.min_iters:
            raise SettingsError(
                f"the iteration cap ({max_iters}) is below the budget's min_iters "
                f"({self.settings.min_iters})"
            )
        self.budget_ms = float(budget_ms)
        self.max_iters = max_iters
        self.ms_per_eval: float | None = None
        self.overhead_ms: float | None = None
        self.extra_evals: float | None = None
        self.balance_ms = 0.0  # leaky sum of (budget - latency)
        self._carry = 0.0  # the fraction of an iteration owed by the dithering

    def plan(self) -> IterationPlan:
        low, high = self.settings.min_iters, self.max_iters
        if self.ms_per_eval is None or self.overhead_ms is None or self.extra_evals is None:
            return IterationPlan(max_iter=low)
        wanted = (self.target_ms() - self.overhead_ms) / max(self.ms_per_eval, 1e-9)
        wanted = min(max(wanted - self.extra_evals, low), high)
        self._carry += wanted
        iters = min(max(math.floor(self._carry), low), high)
        self._carry -= iters
        return IterationPlan(max_iter=iters)

    def target_ms(self) -> float:
        """The latency the next frame aims at: the budget plus the payback correction."""
        correction = self.settings.payback * self.balance_ms
        limit = 0.5 * self.budget_ms
        return self.budget_ms + min(max(correction, -limit), limit)

    def observe(self, timing: FrameTiming) -> None:
        if not all(math.isfinite(v) for v in (timing.latency_ms, timing.solve_ms)):
            return
        weight = self.settings.smoothing
        if timing.evals > 0:
            per_eval = timing.solve_ms / timing.evals
            self.ms_per_eval = _ewma(self.ms_per_eval, per_eval, weight)
            self.extra_evals = _ewma(self.extra_evals, timing.evals - timing.iters, weight)
        self.overhead_ms = _ewma(self.overhead_ms, timing.latency_ms - timing.solve_ms, weight)
        self.balance_ms = (1.0 - self.settings.payback) * self.balance_ms + (
            self.budget_ms - timing.latency_ms
        )


def _ewma(old: float | None, new: float, weight: float) -> float:
    return new if old is None else (1.0 - weight) * old + weight * new
