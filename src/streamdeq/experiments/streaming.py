"""Streaming accuracy against input rate: every scheme under every scheduler, scored by the
latency-aware rule of "Towards Streaming Perception" (Li, Wang and Ramanan, ECCV 2020).

Offline, StreamDEQ trades accuracy for speed (Table 1); online, speed *is* accuracy: a frame is
answered by the latest output finished when it arrives, so a slow scheme answers with stale
outputs and a fast one with fresh but rougher ones. This experiment runs the model online on a
clip set at each input rate (:func:`streamdeq.streaming.run_online`), under a simulated clock
priced by a latency profile (deterministic, the profile's device) or the real one, and reports
for each scheme x scheduler x rate:

* the streaming metric (segmentation: streaming mIoU ``smiou``, misses as false negatives;
  detection: ``sap50``) with the pairing's diagnostics (misses, lag in frames);
* ``offline_<metric>``: the task's ordinary metric on the outputs the run computed, each
  against its own frame (zero latency). Under the "every" scheduler that is the classic offline
  number (Table 1); under the others it is what the frames the run did process are worth;
* the mean cost (ms) and iterations per processed frame, and where it was measured
  (:func:`streamdeq.streaming.measured_on`).

The fit-the-interval scheduler is StreamDEQ's natural online policy (each frame gets the most
iterations that finish before the next frame arrives); it chooses M itself, so it runs once per
rate, as the scheme "fit". A second result, the **frontier**, asks whether adaptive iterations
(a tolerance, a time budget) beat a fixed M at the same mean cost, offline and streaming.

Runs that cannot differ are not repeated (simulated clocks only): under "every" the outputs and
costs do not depend on the rate, so one pass per scheme is re-timed for each rate (:func:`replay`);
the baseline keeps no state, so its every-frame pass answers any scheduler's choice of frames;
and where "latest" never falls behind, it processes exactly what "every" does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..data.sinks import json_safe
from ..errors import SettingsError
from ..streaming import (
    LatencyProfile,
    RealClock,
    SimulatedClock,
    TimedOutput,
    measured_on,
    pair_stream,
    run_online,
    streaming_metric,
)
from ..streaming.provenance import CLOCKS
from ..streaming.records import arrival_times
from ..streaming.schedulers import SCHEDULERS, latest_arrived, make_scheduler
from ..tasks import Task
from ..validation import check_real
from .clips import Clip
from .result import ExperimentResult
from .schemes import Scheme
from .scoring import scoring_task
from .streaming_plot import frontier_rows, plot_frontier, plot_streaming

#: The clips' native rate: Cityscapes sequences and the generated street clips are 17 Hz.
NATIVE_FPS = 17.0

#: Input rates of the default sweep (frames/s).
DEFAULT_FPS = (5.0, 10.0, 17.0, 30.0)

#: The default schemes: the baseline, StreamDEQ at the paper's M, two tolerances.
DEFAULT_SCHEMES = "baseline,stream=1,stream=2,stream=4,stream=8,tol=0.05,tol=0.01"

#: Schedulers of the default sweep (all four: ``every,latest,shrinking-tail,fit``).
DEFAULT_SCHEDULERS = ("latest", "fit")

#: The most iterations per frame of the adaptive schemes (the paper's largest M).
ADAPTIVE_CAP = 8


@dataclass(frozen=True)
class StreamingScheme:
    """One scheme of the sweep.

    Attributes:
        name: how rows and plots name it ("stream M=2", "tol=0.05", "budget=40ms", ...).
        scheme: the StreamDEQ mode and M.
        kind: "baseline" (N from zeros), "fixed" (StreamDEQ at M), "adaptive" (tolerance or
            time budget), "other" (keyframe, non-streaming) or "fit" (the fit scheduler).
        options: more StreamDEQ settings (``tol``, ``budget_ms``, ``max_iter_cap``).
    """

    name: str
    scheme: Scheme
    kind: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def stream_options(self) -> dict[str, Any]:
        return dict(self.options)


#: What the fit-the-interval scheduler runs: StreamDEQ, M chosen per frame (at most N).
FIT = StreamingScheme("fit", Scheme("stream"), "fit")


def parse_schemes(text: str) -> list[StreamingScheme]:
    """ "baseline,stream=2,tol=0.05" -> schemes. Tokens: ``baseline`` (N from zeros),
    ``stream=M``, ``keyframe=M``, ``non-streaming=M`` (M from zeros), ``tol=T`` (stop at a
    relative residual T, at most 8 iterations), ``budget=MS`` (a mean latency budget in ms)."""
    schemes = [_scheme(token.strip()) for token in text.split(",") if token.strip()]
    if not schemes:
        raise SettingsError(f"--schemes lists no scheme: {text!r}")
    names = [s.name for s in schemes]
    if len(set(names)) != len(names):
        raise SettingsError(f"--schemes repeats a scheme: {text!r}")
    return schemes


def _scheme(token: str) -> StreamingScheme:
    word, _, value = token.partition("=")
    if word == "baseline" and not value:
        return StreamingScheme("baseline N", Scheme("baseline"), "baseline")
    makers: dict[str, Callable[[str], StreamingScheme]] = {
        "stream": lambda v: StreamingScheme(f"stream M={_int(token, v)}", Scheme("stream", _int(token, v)), "fixed"),
        "keyframe": lambda v: StreamingScheme(f"keyframe M={_int(token, v)}", Scheme("keyframe", _int(token, v)), "other"),
        "non-streaming": lambda v: StreamingScheme(f"non-streaming M={_int(token, v)}", Scheme("baseline", _int(token, v)), "other"),
        "tol": lambda v: StreamingScheme(f"tol={_real(token, v):g}", Scheme("stream"), "adaptive", (("tol", _real(token, v)), ("max_iter_cap", ADAPTIVE_CAP))),
        "budget": lambda v: StreamingScheme(f"budget={_real(token, v):g}ms", Scheme("stream"), "adaptive", (("budget_ms", _real(token, v)), ("max_iter_cap", ADAPTIVE_CAP))),
    }  # fmt: skip
    if word not in makers or not value:
        raise SettingsError(
            f"unknown scheme {token!r}; give baseline, stream=M, keyframe=M, non-streaming=M, "
            "tol=T or budget=MS"
        )
    return makers[word](value)


def _int(token: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"scheme {token!r}: M must be an integer >= 1")
    return number


def _real(token: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise SettingsError(f"scheme {token!r}: the value must be a number > 0")
    return number


def parse_fps(text: str) -> list[float]:
    """ "5,10,17" -> [5.0, 10.0, 17.0] (sorted, distinct, each > 0)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SettingsError(f"--fps takes comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise SettingsError(f"--fps takes frame rates > 0, got {text!r}")
    return sorted(set(values))


def parse_schedulers(text: str) -> list[str]:
    """ "every,latest" -> the scheduler names, each checked against the registry."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise SettingsError(f"--schedulers lists no scheduler: {text!r}")
    for name in names:
        SCHEDULERS.get(name)  # an unknown name is answered with the known ones
    return list(dict.fromkeys(names))


@dataclass
class StreamingResult(ExperimentResult):
    """The sweep's rows (``streaming.csv/png``) and the frontier (``frontier.csv/png``);
    :meth:`save` writes both, and the rows with their provenance as ``streaming.json``."""

    frontier: list[dict[str, Any]] = field(default_factory=list)
    frontier_plotter: Callable[[Sequence[dict[str, Any]]], Any] | None = None

    def save(self, out_dir: str | Path) -> list[Path]:
        import json

        files = super().save(out_dir)
        out = Path(out_dir)
        if self.frontier and self.frontier_plotter is not None:
            frontier = ExperimentResult("frontier", self.frontier, self.frontier_plotter)
            files += frontier.save(out)
        path = out / f"{self.name}.json"
        partial_path = out / f".{self.name}.partial.json"
        payload = json_safe({"meta": self.meta, "rows": self.rows, "frontier": self.frontier})
        partial_path.write_text(json.dumps(payload, indent=1, default=str, allow_nan=False))
        partial_path.replace(path)
        return [*files, path]


def streaming(
    model: Any,
    clips: Sequence[Clip],
    *,
    fps: Sequence[float] = DEFAULT_FPS,
    schemes: Sequence[StreamingScheme] | str = DEFAULT_SCHEMES,
    schedulers: Sequence[str] | str = DEFAULT_SCHEDULERS,
    clock: str = "sim",
    profile: Any = None,
    profile_name: str | None = None,
    perf_factor: float = 1.0,
    seed: int = 0,
    native_fps: float = NATIVE_FPS,
    frontier: bool = True,
    **stream_options: Any,
) -> StreamingResult:
    """Streaming accuracy of each scheme x scheduler at each input rate (module docstring).

    Args:
        model: a streamable model in eval mode whose task has a streaming scorer.
        clips: clips annotated for the model's task (each clip one stream; annotated frames
            are scored, e.g. every generated frame or Cityscapes' last one).
        fps: input rates; frame i of a clip arrives at i / fps.
        schemes: :class:`StreamingScheme` list or a :func:`parse_schemes` string.
        schedulers: names from :data:`streamdeq.streaming.SCHEDULERS` (or one comma string).
        clock: "sim" (virtual time, the default) or "real" (wall time; runs take real time).
        profile: for the sim clock, what a step costs: a
            :class:`~streamdeq.streaming.LatencyProfile`, a cost model
            (:class:`~streamdeq.streaming.LinearCost`), or None for each step's measured cost.
        profile_name: how provenance names the profile (default: from the profile).
        perf_factor: simulated costs are divided by it (2: a device twice as fast).
        seed: of the profile's draws.
        native_fps: the clips' own rate; the frontier's streaming column is read at the swept
            rate closest to it.
        frontier: run every scheme offline too (every frame in turn) for the frontier and the
            plot's offline lines; False skips those passes where no shortcut needs them (the
            rows keep their own offline column), e.g. for one rate.
        stream_options: more StreamDEQ settings for every scheme (solver, f_thres, ...).

    Returns:
        a :class:`StreamingResult`: rows (scheme, kind, mode, M, scheduler, fps, the streaming
        metric, ``offline_<metric>``, the task's other streaming columns, frames, misses,
        miss_rate, own_input_rate, lag_mean, lag_p90, processed, mean_ms, mean_iters, then the
        provenance: device, threads, torch, date, clock, profile, perf_factor, seed); the
        frontier (see :func:`streamdeq.experiments.streaming_plot.frontier_rows`).
    """
    task = scoring_task(model, clips)
    clips = _task_clips(task, clips)
    plan = _Plan.build(fps, schemes, schedulers, clock, profile, perf_factor, seed)
    provenance = {
        **measured_on(_device(model), clock=clock, profile=profile_name or plan.profile_label),
        "perf_factor": plan.perf_factor,
        "seed": seed,
    }
    scoring = PairScores(model, task)
    runner = _Runner(model, clips, plan, dict(stream_options), scoring, eager=frontier)
    rows = []
    for scheme, scheduler in plan.combinations():
        for rate in plan.fps:
            runs = runner.runs(scheme, scheduler, rate)
            rows.append(_row(scoring, clips, scheme, scheduler, rate, runs) | provenance)
    offline = [_offline_point(scoring, clips, s, runner.offline(s)) for s in runner.passed()]
    streaming_key = scoring.headline
    frontier_points = frontier_rows(
        rows, offline, task.headline, streaming_key, _closest(plan.fps, native_fps)
    )
    meta = {
        "clips": len(clips),
        "frames": sum(clip.num_frames for clip in clips),
        "headline": streaming_key,
        "offline_headline": task.headline,
        "fps": plan.fps,
        "schemes": [s.name for s in plan.schemes],
        "schedulers": plan.schedulers,
        "table_columns": _table_columns(streaming_key, task.headline),
        **provenance,
    }
    return StreamingResult(
        "streaming",
        rows,
        partial(
            plot_streaming,
            metric=streaming_key,
            offline={p["scheme"]: p[f"offline_{task.headline}"] for p in offline},
            label=task.headline_label,
        ),
        meta,
        frontier=[row | provenance for row in frontier_points] if frontier else [],
        frontier_plotter=partial(
            plot_frontier,
            metric=streaming_key,
            offline_metric=task.headline,
            label=task.headline_label,
        ),
    )


@dataclass(frozen=True)
class _Plan:
    """The sweep's settings, checked."""

    fps: list[float]
    schemes: list[StreamingScheme]
    schedulers: list[str]
    clock: str
    cost: Any
    perf_factor: float
    seed: int

    @classmethod
    def build(cls, fps, schemes, schedulers, clock, profile, perf_factor, seed) -> _Plan:
        if clock not in CLOCKS:
            raise SettingsError(f"clock must be sim or real, got {clock!r}")
        check_real("perf_factor", perf_factor, exclusive_minimum=0)
        if clock == "real" and (profile is not None or perf_factor != 1.0):
            raise SettingsError(
                "a profile and a perf factor price simulated steps; the real clock measures them"
            )
        rates = parse_fps(fps if isinstance(fps, str) else ",".join(map(str, fps)))
        if isinstance(schemes, str):
            schemes = parse_schemes(schemes)
        schedulers = parse_schedulers(
            schedulers if isinstance(schedulers, str) else ",".join(schedulers)
        )
        if not schemes and schedulers != ["fit"]:
            raise SettingsError("give at least one scheme")
        return cls(rates, list(schemes), schedulers, clock, profile, float(perf_factor), seed)

    def combinations(self) -> list[tuple[StreamingScheme, str]]:
        pairs = []
        for scheduler in self.schedulers:
            if scheduler == "fit":
                pairs.append((FIT, scheduler))
            else:
                pairs += [(scheme, scheduler) for scheme in self.schemes]
        return pairs

    def new_clock(self) -> Any:
        if self.clock == "real":
            return RealClock()
        return SimulatedClock(self.cost, self.perf_factor, self.seed)

    @property
    def profile_label(self) -> str:
        if self.clock == "real":
            return "none (real clock)"
        if self.cost is None:
            return "measured"
        if isinstance(self.cost, LatencyProfile):
            size = "x".join(map(str, self.cost.size))
            return f"{self.cost.model} {size} {self.cost.device}"
        return repr(self.cost)


class _Runner:
    """Runs (and remembers) each scheme's online runs, one list of records per clip."""

    def __init__(
        self,
        model: Any,
        clips: Sequence[Clip],
        plan: _Plan,
        options: dict[str, Any],
        scoring: PairScores,
        eager: bool = True,
    ) -> None:
        self.model = model
        self.clips = clips
        self.plan = plan
        self.options = options
        self.scoring = scoring
        self.eager = eager
        self._every: dict[str, list[list[TimedOutput]]] = {}

    def runs(self, scheme: StreamingScheme, scheduler: str, fps: float) -> list[list[TimedOutput]]:
        shortcut = self.eager or scheme.name in self._every or scheduler == "every"
        if self.plan.clock == "sim" and scheduler != "fit" and shortcut:
            passes = self._every_pass(scheme)
            if scheduler == "every" or scheme.scheme.mode == "baseline":
                return [replay(records, scheduler, fps) for records in passes]
            if scheduler == "latest":
                retimed = [replay(records, "every", fps) for records in passes]
                if all(never_behind(records, fps) for records in retimed):
                    return retimed
        return [self._online(clip, scheme, scheduler, fps) for clip in self.clips]

    def passed(self) -> list[StreamingScheme]:
        """The schemes to show offline: all (eager), else those whose pass ran anyway."""
        return [s for s in self.plan.schemes if self.eager or s.name in self._every]

    def offline(self, scheme: StreamingScheme) -> list[list[TimedOutput]]:
        """Every frame in turn (the ordinary, zero-latency view of the scheme)."""
        return self._every_pass(scheme)

    def _every_pass(self, scheme: StreamingScheme) -> list[list[TimedOutput]]:
        if scheme.name not in self._every:
            self._every[scheme.name] = [
                self._online(clip, scheme, "every", NATIVE_FPS, simulated=True)
                for clip in self.clips
            ]
            self.scoring.keep_alive(self._every[scheme.name])
        return self._every[scheme.name]

    def _online(
        self, clip: Clip, scheme: StreamingScheme, scheduler: str, fps: float, simulated=False
    ) -> list[TimedOutput]:
        clock = self.plan.new_clock() if not simulated or self.plan.clock == "sim" else None
        return run_online(
            self.model,
            clip.frames,
            fps,
            scheme.scheme,
            scheduler,
            clock if clock is not None else SimulatedClock(),
            keep_outputs=True,  # any output may answer an annotated frame
            stream_options={**self.options, **scheme.stream_options},
            stream_id=clip.name,
        )


def replay(records: Sequence[TimedOutput], scheduler: str, fps: float) -> list[TimedOutput]:
    """What ``scheduler`` would have run at ``fps``, from an every-frame run under a simulated
    clock, without running the model: exact where the outputs do not depend on which frames
    were processed before (under "every"; for a stateless scheme, the baseline, under any
    scheduler but "fit").

    Step j is charged the j-th step's cost of the every-frame run (a priced clock draws its
    costs in step order) and timed with :func:`~streamdeq.streaming.run_online`'s arithmetic:
    a step starts when the scheduler's frame has arrived and the previous step is done.
    """
    chooser = make_scheduler(scheduler)
    chooser.reset()
    arrivals = arrival_times(len(records), fps)
    now, last, replayed = 0.0, -1, []
    while (pick := chooser.pick(now, last, arrivals)) is not None:
        start = max(now, pick.start_s)
        charged = records[len(replayed)]
        now = start + charged.latency_ms / 1000.0
        chooser.observe(start, now)
        replayed.append(
            replace(
                records[pick.index],
                finish_s=now,
                latency_ms=charged.latency_ms,
                iters=charged.iters,
            )
        )
        last = pick.index
    return replayed


def never_behind(records: Sequence[TimedOutput], fps: float) -> bool:
    """True when each step of an every-frame run finishes before the frame after next arrives:
    then "latest" never has a choice and processes exactly these frames at these times."""
    arrivals = arrival_times(max(r.input_index for r in records) + 1, fps)
    return all(
        latest_arrived(arrivals, record.finish_s) <= record.input_index + 1 for record in records
    )


def _row(
    scoring: PairScores,
    clips: Sequence[Clip],
    scheme: StreamingScheme,
    scheduler: str,
    fps: float,
    runs: Sequence[Sequence[TimedOutput]],
) -> dict[str, Any]:
    scores = scoring.streaming(clips, runs, fps)
    head = scoring.headline
    records = [r for run in runs for r in run]
    processed = len(records) / sum(clip.num_frames for clip in clips)
    return {
        "scheme": scheme.name,
        "kind": scheme.kind,
        "mode": scheme.scheme.mode,
        "M": scheme.scheme.iters,
        "scheduler": scheduler,
        "fps": fps,
        head: scores.pop(head),
        f"offline_{scoring.task.headline}": scoring.offline(clips, runs),
        **scores,
        "processed": processed,
        "mean_ms": sum(r.latency_ms for r in records) / len(records),
        "mean_iters": sum(r.iters for r in records) / len(records),
    }


def _offline_point(
    scoring: PairScores, clips: Sequence[Clip], scheme: StreamingScheme, runs
) -> dict[str, Any]:
    """A scheme run offline (every frame in turn): its cost and its ordinary metric."""
    records = [r for run in runs for r in run]
    return {
        "scheme": scheme.name,
        "kind": scheme.kind,
        "mean_ms": sum(r.latency_ms for r in records) / len(records),
        "mean_iters": sum(r.iters for r in records) / len(records),
        f"offline_{scoring.task.headline}": scoring.offline(clips, runs),
    }


class PairScores:
    """Scores runs, streaming and offline, scoring each (output, annotated frame) pair once.

    Why: the sweep pairs the same outputs with the same frames many times (one every-frame
    pass re-timed for each rate and scheduler), and scoring a pair (segmentation: upsample,
    argmax, confusion matrix) costs more than the run's bookkeeping. Metrics that keep a
    confusion matrix (``.matrix.matrix``) add a cached per-pair matrix; others score afresh.
    Only outputs of ``keep_alive`` runs are cached (their ids cannot be reused while cached).
    """

    def __init__(self, model: Any, task: Task) -> None:
        self.model = model
        self.task = task
        self.headline = streaming_metric(model, task=task).headline
        self._cache: dict[tuple[str, int, int], Any] = {}
        self._alive: dict[int, Any] = {}

    def keep_alive(self, runs: Sequence[Sequence[TimedOutput]]) -> None:
        for run in runs:
            self._alive.update({id(r.output): r.output for r in run if r.output is not None})

    def streaming(self, clips, runs, fps: float) -> dict[str, float | int]:
        metric = streaming_metric(self.model, task=self.task, fps=fps)
        for clip, records in zip(clips, runs, strict=True):
            pairs = pair_stream(records, clip.targets.keys(), fps=fps)
            for pair in pairs:
                target = clip.targets[pair.frame]
                if pair.output is None:
                    metric.scorer.miss(target)
                elif pair.output.output is None:
                    raise SettingsError(f"frame {pair.frame}'s answer holds no prediction")
                else:
                    self._add(metric.scorer, "stream", pair.output.output, target, pair.frame)
            metric.diagnostics.add(pairs)
        metric.all_reduce()
        return metric.compute()

    def offline(self, clips, runs) -> float:
        """The task's ordinary headline metric of the outputs computed, each against its own
        frame (NaN when no annotated frame was processed)."""
        metric = self.task.build_metric(self.model)
        scored = 0
        for clip, records in zip(clips, runs, strict=True):
            for record in records:
                if record.output is not None and record.input_index in clip.targets:
                    target = clip.targets[record.input_index]
                    self._add(metric, "offline", record.output, target, record.input_index)
                    scored += 1
        metric.all_reduce()
        return float(metric.compute()[self.task.headline]) if scored else math.nan

    def _add(self, metric: Any, kind: str, output: Any, target: Any, frame: int) -> None:
        update = metric.score if kind == "stream" else metric.update
        matrix = getattr(getattr(metric, "matrix", None), "matrix", None)
        if matrix is None or id(output) not in self._alive:
            update(output, target)
            return
        key = (kind, id(output), frame)
        if key not in self._cache:
            before = matrix.clone()
            update(output, target)
            self._cache[key] = matrix - before
            return
        matrix += self._cache[key]


def _task_clips(task: Task, clips: Sequence[Clip]) -> list[Clip]:
    if task.name == "detection":
        from .detection_clips import with_boxes

        return list(with_boxes(clips))
    return list(clips)


def _device(model: Any) -> torch.device:
    parameter = next(iter(getattr(model, "parameters", lambda: iter(()))()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _table_columns(streaming_key: str, offline_key: str) -> list[str]:
    """What the command prints of each row (the CSV has all columns)."""
    return [
        "scheme",
        "scheduler",
        "fps",
        streaming_key,
        f"offline_{offline_key}",
        "miss_rate",
        "lag_mean",
        "mean_ms",
    ]


def _closest(values: Sequence[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), v))


__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_SCHEDULERS",
    "DEFAULT_SCHEMES",
    "FIT",
    "NATIVE_FPS",
    "PairScores",
    "StreamingResult",
    "StreamingScheme",
    "never_behind",
    "parse_fps",
    "parse_schedulers",
    "parse_schemes",
    "replay",
    "streaming",
]
