"""Clocks of an online run: when a frame arrives, when the processor is free, when an output is
finished.

Two clocks, one interface (:class:`OnlineClock`), so the runner and the schedulers are written
once:

* :class:`SimulatedClock` (the default) — virtual seconds that advance only by what each step
  is charged: its measured wall time (:class:`MeasuredCost`), a draw from a recorded
  :class:`~streamdeq.streaming.profiles.LatencyProfile` of a named device
  (:class:`ProfileCost`), or a fixed cost model (:class:`LinearCost`, for what-ifs and tests),
  divided by ``perf_factor``. The model really runs, in the order the virtual clock dictates
  (its state depends on which frames it processed); only time is simulated. The charge goes
  into the engine (``StreamDEQ(pricing=...)``), so the time-budget controller and the reported
  latencies learn the simulated costs, not this machine's. With a profile or a fixed cost the
  run is the same on every machine and every time: the draws come from a ``random.Random``
  seeded at :meth:`start`.
* :class:`RealClock` — wall time from the stream's start; waiting sleeps; a step's finish is
  read after it returns, and the engine synchronises the device at the end of each step, so
  CUDA work is finished when it is stamped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from ..errors import SettingsError
from ..stream.budget import FrameTiming
from ..validation import check_real
from .profiles import LatencyProfile


class CostModel(Protocol):
    """What a step is charged, from what it did (the engine's measured timings, one per stream
    stepped together; their evaluations say how much solving the step did)."""

    def price(self, timings: list[FrameTiming], rng: random.Random) -> list[FrameTiming]: ...


@dataclass(frozen=True)
class MeasuredCost:
    """The step's own measured wall time (this machine, as loaded as it is now)."""

    def price(self, timings: list[FrameTiming], rng: random.Random) -> list[FrameTiming]:
        return list(timings)


@dataclass(frozen=True)
class LinearCost:
    """``overhead_ms + ms_per_eval * evals`` per step, no noise: a toy device for what-ifs and
    tests. A step of several streams costs as one with the most evaluations (ideal batching)."""

    overhead_ms: float
    ms_per_eval: float = 0.0

    def __post_init__(self) -> None:
        check_real("overhead_ms", self.overhead_ms, minimum=0)
        check_real("ms_per_eval", self.ms_per_eval, minimum=0)

    def price(self, timings: list[FrameTiming], rng: random.Random) -> list[FrameTiming]:
        evals = max(t.evals for t in timings)
        solve = self.ms_per_eval * evals
        return [replace(t, latency_ms=self.overhead_ms + solve, solve_ms=solve) for t in timings]


@dataclass(frozen=True)
class ProfileCost:
    """A draw from a recorded profile for the step's evaluations (the most any stream of the
    step made) and its number of streams (:meth:`LatencyProfile.draw`)."""

    profile: LatencyProfile

    def price(self, timings: list[FrameTiming], rng: random.Random) -> list[FrameTiming]:
        evals = max(t.evals for t in timings)
        latency, solve = self.profile.draw(evals, rng, batch=len(timings))
        return [replace(t, latency_ms=latency, solve_ms=solve) for t in timings]


class OnlineClock(Protocol):
    """The clock an online run reads; seconds from the stream's start."""

    #: True when time is simulated (the runner then needs no warm-up for a priced cost).
    simulated: bool

    def start(self) -> None:
        """The stream starts now (time 0); a simulated clock also re-seeds its draws."""
        ...

    def now(self) -> float: ...

    def wait_until(self, t: float) -> None:
        """Idle until ``t`` (no-op if it has passed)."""
        ...

    def pricing(self) -> Callable[[list[FrameTiming]], list[FrameTiming]] | None:
        """What the engine should charge steps (None: their measured time)."""
        ...

    def finish(self, latency_ms: float) -> float:
        """A step charged ``latency_ms`` has just returned: the moment its outputs are ready."""
        ...


class SimulatedClock:
    """Virtual time advanced by each step's charge (module docstring).

    Args:
        profile: a :class:`LatencyProfile` to draw costs from, any :class:`CostModel`, or None
            for the step's measured wall time.
        perf_factor: costs are divided by this (2.0: a device twice as fast as the profile's,
            as in the sAP reference code's ``perf_factor``).
        seed: of the profile's draws; the same seed gives the same run.
    """

    simulated = True

    def __init__(
        self,
        profile: LatencyProfile | CostModel | None = None,
        perf_factor: float = 1.0,
        seed: int = 0,
    ) -> None:
        check_real("perf_factor", perf_factor, exclusive_minimum=0)
        if profile is None:
            self.cost: CostModel = MeasuredCost()
        elif isinstance(profile, LatencyProfile):
            self.cost = ProfileCost(profile)
        elif callable(getattr(profile, "price", None)):
            self.cost = profile
        else:
            raise SettingsError(
                f"profile must be a LatencyProfile, a cost model or None, got "
                f"{type(profile).__name__}"
            )
        self.perf_factor = float(perf_factor)
        self.seed = seed
        self._rng = random.Random(seed)
        self._now = 0.0

    @property
    def measures(self) -> bool:
        """Costs come from this machine's wall time (warm-up matters)."""
        return isinstance(self.cost, MeasuredCost)

    def start(self) -> None:
        self._rng = random.Random(self.seed)
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def wait_until(self, t: float) -> None:
        self._now = max(self._now, t)

    def pricing(self) -> Callable[[list[FrameTiming]], list[FrameTiming]]:
        return self._price

    def _price(self, timings: list[FrameTiming]) -> list[FrameTiming]:
        priced = self.cost.price(list(timings), self._rng)
        factor = self.perf_factor
        if factor == 1.0:
            return priced
        return [
            replace(t, latency_ms=t.latency_ms / factor, solve_ms=t.solve_ms / factor)
            for t in priced
        ]

    def finish(self, latency_ms: float) -> float:
        self._now += latency_ms / 1000.0
        return self._now


class RealClock:
    """Wall time (``time.perf_counter``) from :meth:`start`; waiting sleeps.

    Args:
        clock, sleep: injectable for tests.
    """

    simulated = False
    measures = True

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = self._clock()

    def now(self) -> float:
        if self._t0 is None:
            raise SettingsError("RealClock.now() before start()")
        return self._clock() - self._t0

    def wait_until(self, t: float) -> None:
        while (left := t - self.now()) > 0:  # a sleep may end a little early
            self._sleep(left)

    def pricing(self) -> None:
        return None

    def finish(self, latency_ms: float) -> float:
        return self.now()


__all__ = [
    "CostModel",
    "LinearCost",
    "MeasuredCost",
    "OnlineClock",
    "ProfileCost",
    "RealClock",
    "SimulatedClock",
]
