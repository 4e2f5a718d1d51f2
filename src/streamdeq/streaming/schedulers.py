"""Schedulers of an online run: when the processor is free, which frame runs next, when, and (for
:class:`FitInterval`) with how many iterations.

Frames arrive at tau_0 < tau_1 < ... ; a frame can be processed once it has arrived. The
schedulers (by name in :data:`SCHEDULERS`):

* ``"every"`` (:class:`EveryFrame`) — every frame, in order. A scheme slower than the frame
  interval builds a queue and the lag grows without bound. At the end of the stream the queue is
  finished: the outputs after the last arrival are recorded (they count for nothing new in a
  streaming score, which pairs each annotated frame with the latest output already finished).
* ``"latest"`` (:class:`Latest`) — when free, the latest frame that has arrived; the ones in
  between are skipped, as a live system would. Idle until the next arrival if nothing new came.
* ``"shrinking-tail"`` (:class:`ShrinkingTail`) — "latest", except that it idles until the next
  frame when that lowers the expected lag: with t the moment it is free, r the expected cost of
  a step and tail(t) the fraction of the current frame interval already gone at t, it waits iff
  tail(t + r) < tail(t), i.e. starting now would finish at a *smaller* fraction of an interval
  than now, so waiting for the fresher frame ends at almost the same point of its interval but
  with newer input. This is the "shrinking tail" policy of Li, Wang & Ramanan, "Towards
  Streaming Perception" (ECCV 2020), appendix B.1 (their ``util/schedule_sim.py`` in
  mtli/sAP simulates it); r here is learned from the steps' observed (or simulated) costs.
* ``"fit"`` (:class:`FitInterval`) — StreamDEQ's own policy: "latest", and each frame gets the
  iterations M that let it finish before the next frame arrives, from the running cost estimate
  the time-budget controller (:class:`~streamdeq.stream.budget.TimeBudget`) learns (per stream,
  so per scheme and frame size). The scheme must be one with a per-frame M ("stream" or
  "keyframe"; its ``iters``, if given, caps M).

A skipped frame is never seen by the model: the stream's state simply carries over the gap, so
the next processed frame warm-starts from the last processed one's state (the same as a lower
frame rate). Every scheme of the engine runs under every scheduler (fit: those with an M).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..errors import SettingsError
from ..registry import Registry
from ..stream.budget import BudgetSettings, IterationPlan, TimeBudget
from ..validation import check_real

#: Two times closer than this are the same moment (sums of float costs vs arrival times).
SAME_MOMENT_S = 1e-9


class SchemeLike(Protocol):
    """A scheme as :class:`streamdeq.experiments.schemes.Scheme` gives it."""

    mode: str
    iters: int | None

    def settings(self, **options: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Pick:
    """The scheduler's decision: process frame ``index``, starting at ``start_s`` (later than
    now means idle until then)."""

    index: int
    start_s: float


def latest_arrived(arrivals: Sequence[float], now: float) -> int:
    """The index of the latest frame arrived by ``now`` (-1 before the first)."""
    return bisect.bisect_right(arrivals, now + SAME_MOMENT_S) - 1


class Scheduler:
    """Decides what runs next; subclasses override :meth:`pick` and the hooks they need.

    The runner calls, for each step: :meth:`pick` -> (waits) -> :meth:`before_step` -> the step
    -> :meth:`observe`. :meth:`reset` starts a new run.
    """

    name: ClassVar[str] = ""

    def reset(self) -> None:
        """Forget what was learned (a new run)."""

    def pick(self, now: float, last: int, arrivals: Sequence[float]) -> Pick | None:
        """What to process when free at ``now``, the last processed frame being ``last`` (-1:
        none yet); None: the run is over."""
        raise NotImplementedError

    def stream_settings(
        self, scheme: SchemeLike, options: Mapping[str, Any], interval_s: float
    ) -> dict[str, Any]:
        """The StreamDEQ settings of a stream run under this scheduler."""
        return scheme.settings(**options)

    def attach(self, stream: Any) -> None:
        """Install anything the scheduler needs in the stream (a controller)."""

    def before_step(self, stream: Any, pick: Pick, arrivals: Sequence[float]) -> None:
        """Called just before the picked frame is stepped."""

    def observe(self, start_s: float, finish_s: float) -> None:
        """A step started at ``start_s`` finished at ``finish_s``."""


class EveryFrame(Scheduler):
    """Every frame in order (module docstring)."""

    name = "every"

    def pick(self, now: float, last: int, arrivals: Sequence[float]) -> Pick | None:
        index = last + 1
        if index >= len(arrivals):
            return None
        return Pick(index, max(now, arrivals[index]))


class Latest(Scheduler):
    """The latest arrived frame when free (module docstring)."""

    name = "latest"

    def pick(self, now: float, last: int, arrivals: Sequence[float]) -> Pick | None:
        newest = latest_arrived(arrivals, now)
        if newest > last:
            return Pick(newest, now)
        if last + 1 < len(arrivals):
            return Pick(last + 1, arrivals[last + 1])
        return None


class ShrinkingTail(Latest):
    """ "latest", idling for the next frame when the tail would shrink (module docstring).

    Args:
        smoothing: weight of the newest step in the running (EWMA) estimate of a step's cost.
    """

    name = "shrinking-tail"

    def __init__(self, smoothing: float = 0.2) -> None:
        check_real("smoothing", smoothing, exclusive_minimum=0, maximum=1)
        self.smoothing = smoothing
        self.cost_s: float | None = None

    def reset(self) -> None:
        self.cost_s = None

    def observe(self, start_s: float, finish_s: float) -> None:
        cost = finish_s - start_s
        old = self.cost_s
        self.cost_s = cost if old is None else (1 - self.smoothing) * old + self.smoothing * cost

    def pick(self, now: float, last: int, arrivals: Sequence[float]) -> Pick | None:
        chosen = super().pick(now, last, arrivals)
        if chosen is None or self.cost_s is None or chosen.start_s > now:
            return chosen  # nothing to decide: the first step starts at once, as in sAP
        following = chosen.index + 1
        if following >= len(arrivals):
            return chosen  # no fresher frame will come
        if _tail(arrivals, now + self.cost_s) < _tail(arrivals, now):
            return Pick(following, arrivals[following])
        return chosen


def _tail(arrivals: Sequence[float], t: float) -> float:
    """The fraction of the frame interval containing ``t`` already gone at ``t`` (after the last
    arrival, intervals continue at the last one's length)."""
    k = latest_arrived(arrivals, t)
    if k < 0:
        return 0.0
    if k + 1 < len(arrivals):
        start, length = arrivals[k], arrivals[k + 1] - arrivals[k]
    else:
        length = arrivals[-1] - arrivals[-2] if len(arrivals) > 1 else 1.0
        start = arrivals[-1] + length * math.floor((t - arrivals[-1]) / length + SAME_MOMENT_S)
    fraction = (t - start) / length
    return 0.0 if fraction < SAME_MOMENT_S else fraction


class IntervalBudget(TimeBudget):
    """The time-budget controller asked per frame: the most M that finishes by a deadline.

    It learns the cost model exactly as :class:`TimeBudget` does (overhead, ms per evaluation,
    extra evaluations, from the engine's or the simulated clock's timings), but plans
    ``floor((headroom * deadline_ms - overhead) / ms_per_eval - extra_evals)`` for the frame in
    hand instead of holding a mean: no dithering and no payback, which would let single frames
    overrun. With nothing learned yet it plans ``min_iters``; the online runners warm up before
    the clock starts and hand it the costs learnt there
    (:func:`~streamdeq.streaming.online.prime_cost_estimates`).
    """

    def __init__(
        self,
        budget_ms: float,
        max_iters: int,
        settings: BudgetSettings | None = None,
        headroom: float = 1.0,
    ) -> None:
        super().__init__(budget_ms, max_iters, settings)
        check_real("headroom", headroom, exclusive_minimum=0, maximum=1)
        self.headroom = headroom
        self.deadline_ms = float(budget_ms)

    def plan(self) -> IterationPlan:
        low, high = self.settings.min_iters, self.max_iters
        if self.ms_per_eval is None or self.overhead_ms is None or self.extra_evals is None:
            return IterationPlan(max_iter=low)
        room = self.headroom * self.deadline_ms - self.overhead_ms
        wanted = room / max(self.ms_per_eval, 1e-9) - self.extra_evals
        return IterationPlan(max_iter=min(max(math.floor(wanted + 1e-9), low), high))


class FitInterval(Latest):
    """ "latest", each frame with the M that fits before the next arrival (module docstring).

    Args:
        headroom: plan for this fraction of the time left (the rest absorbs the noise of the
            cost; 1.0 for a deterministic cost).
    """

    name = "fit"

    def __init__(self, headroom: float = 0.9) -> None:
        check_real("headroom", headroom, exclusive_minimum=0, maximum=1)
        self.headroom = headroom
        self._interval_ms = math.nan

    def stream_settings(
        self, scheme: SchemeLike, options: Mapping[str, Any], interval_s: float
    ) -> dict[str, Any]:
        if scheme.mode not in ("stream", "keyframe"):
            raise SettingsError(
                f"the fit scheduler chooses M per frame; scheme {scheme.mode!r} has none "
                "(use stream or keyframe)"
            )
        if any(options.get(name) is not None for name in ("iters", "tol", "budget_ms")):
            raise SettingsError(
                "the fit scheduler sets the time budget itself; drop iters, tol and budget_ms"
            )
        settings = dict(scheme.settings(**options))
        cap = settings.pop("iters", None)
        self._interval_ms = interval_s * 1000.0
        settings["budget_ms"] = self._interval_ms
        if cap is not None:
            settings["max_iter_cap"] = cap
        return settings

    def attach(self, stream: Any) -> None:
        budget = stream.controller
        stream.controller = IntervalBudget(
            budget.budget_ms, budget.max_iters, budget.settings, self.headroom
        )

    def before_step(self, stream: Any, pick: Pick, arrivals: Sequence[float]) -> None:
        following = pick.index + 1
        if following < len(arrivals):
            deadline_ms = (arrivals[following] - pick.start_s) * 1000.0
        else:
            deadline_ms = self._interval_ms
        stream.controller.deadline_ms = deadline_ms


SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler", error=SettingsError)
for _scheduler in (EveryFrame, Latest, ShrinkingTail, FitInterval):
    SCHEDULERS.register(_scheduler.name, _scheduler)


def make_scheduler(scheduler: str | Scheduler) -> Scheduler:
    """A scheduler by name (:data:`SCHEDULERS`) with its defaults, or the one given."""
    if isinstance(scheduler, Scheduler):
        return scheduler
    return SCHEDULERS.get(scheduler)()


__all__ = [
    "SCHEDULERS",
    "EveryFrame",
    "FitInterval",
    "IntervalBudget",
    "Latest",
    "Pick",
    "Scheduler",
    "SchemeLike",
    "ShrinkingTail",
    "latest_arrived",
    "make_scheduler",
]
