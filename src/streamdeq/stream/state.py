"""One stream's state and its per-frame decisions, the schemes of the paper included.

A frame goes through four phases, so that many streams can share the model and solver calls
between them (see :mod:`streamdeq.stream.stepping`):

1. :meth:`StreamState.plan` — decide the start point (reset or warm start) and the iteration
   plan, and describe the solves as :class:`SolveJob` s;
2. :meth:`StreamState.review` — judge the results, read back for all the streams of a step
   together (:func:`read_back_many`: the one host synchronisation of a step): detect
   divergence and shot changes, and ask for a second solve if the shot policy wants one;
3. :meth:`StreamState.settle` — take that second solve's outcome, if there was one;
4. :meth:`StreamState.conclude` — keep the new state, feed the iteration controller, report.

What a stream holds between frames is fixed in size: the state tensors, the previous frame's
thumbnail and a few numbers; nothing grows with the number of frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ..solvers import SolverStatus
from .budget import FrameTiming, IterationPlan
from .frames import FrameInput, output_to_frame
from .info import FrameInfo, ResetReason, StepResult
from .jobs import SolveJob
from .protocol import StreamableModel
from .settings import StreamSettings
from .shots import ShotDetector, ShotVerdict


@dataclass
class _Frame:
    """The work on the frame in progress (dropped when it concludes)."""

    inp: FrameInput
    injection: list[Tensor | None]
    reset: ResetReason | None
    warm: bool  # started from the stream's state, not from zeros
    plan: IterationPlan
    out_job: SolveJob  # the solve whose answer becomes the output
    jobs: list[SolveJob]  # every solve of the frame (for its cost)
    ref_job: SolveJob | None = None  # the reference scheme's full solve
    frame_diff: Tensor | None = None
    thumb_finite: Tensor | None = None
    iters_before: int = 0  # iterations of the solve a boost continued
    rel_before: float = math.nan
    rel_after: float = math.nan
    iters: int = 0
    status: SolverStatus = SolverStatus.MAX_ITER
    evals: int = 0
    diverged: bool = False  # any solve of the frame blew up: the state is dropped after it
    output_diverged: bool = False  # the output solve blew up: the output falls back
    verdict: ShotVerdict = field(default_factory=lambda: ShotVerdict(False, math.nan))


class StreamState:
    """Everything one stream carries from frame to frame.

    ``z`` is the state the next frame starts from: z_{t-1}[M] in the stream and keyframe
    schemes, the previous frame's full solve in the reference scheme, None after a reset (and
    always in the baseline scheme).
    """

    def __init__(self, model: StreamableModel, settings: StreamSettings) -> None:
        self.settings = settings
        self.preprocess = settings.preprocess_for(model)  # once: it holds for the stream's life
        # padding cropped, coordinates back to the frame's pixels: the model's own hooks for
        # non-dense outputs (boxes), so the engine never needs to know what an output holds
        self._to_frame = output_to_frame(model)
        needs_full = settings.mode != "stream"
        self.f_thres = settings.f_thres_for(model) if needs_full else None
        self.controller = settings.controller(model)
        self.detector = ShotDetector(settings.shots)
        self.z: list[Tensor] | None = None
        self.size: tuple[int, int] | None = None
        self.index = 0
        self.boost_left = 0
        self._pending: ResetReason | None = ResetReason.FIRST_FRAME
        self._frame: _Frame | None = None

    def reset(self) -> None:
        """Forget the state: the next frame starts from zeros (reported as a manual reset)."""
        self.z = None
        self.boost_left = 0
        self.detector.forget_all()
        if self._pending is not ResetReason.FIRST_FRAME:
            self._pending = ResetReason.MANUAL

    # ------------------------------------------------------------------ phase 1: plan

    def plan(
        self, inp: FrameInput, injection: list[Tensor | None], model: StreamableModel
    ) -> list[SolveJob]:
        settings = self.settings
        reset = self._pending
        if reset is None and inp.size != self.size:
            reset = ResetReason.SIZE_CHANGE
            self.detector.forget_all()
        if reset is not None:
            self.z = None
            self.boost_left = 0
            self.detector.forget_scene()
        frame_diff = self.detector.frame_difference(inp.unit)
        start = self.z
        if settings.mode == "baseline" or (settings.mode == "keyframe" and start is None):
            start, plan = None, IterationPlan(self.f_thres)
        else:
            plan = self.controller.plan()
            if self.boost_left > 0:
                plan = replace(plan, max_iter=plan.max_iter + settings.shots.boost_iters)
                self.boost_left -= 1
        if start is None:
            _forget_solver_memory(settings.solver_options)
        z0 = start if start is not None else model.init_state(injection)
        out_job = self._job(z0, injection, plan)
        frame = _Frame(
            inp=inp,
            injection=injection,
            reset=reset,
            warm=start is not None,
            plan=plan,
            out_job=out_job,
            jobs=[out_job],
            frame_diff=frame_diff,
            thumb_finite=self.detector.thumb_is_finite(),
        )
        if settings.mode == "reference":
            frame.ref_job = self._job(
                model.init_state(injection), injection, IterationPlan(self.f_thres)
            )
            frame.jobs.append(frame.ref_job)
        self._frame = frame
        return list(frame.jobs)

    def _job(self, z0: list[Tensor], injection, plan: IterationPlan) -> SolveJob:
        settings = self.settings
        return SolveJob(
            z0=list(z0),
            injection=injection,
            plan=plan,
            solver=settings.solver,
            solver_options=settings.solver_options,
            measure_after=settings.measure_after,
        )

    # ------------------------------------------------------------------ phase 2: review

    def review_scalars(self) -> list[Tensor | None]:
        """What :meth:`review` reads back (0-dim tensors; None: nothing), for the step to read
        every stream's in one device->host transfer (:func:`read_back_many`)."""
        frame = self._frame
        out = frame.out_job.result
        scalars = [out.rel_before, out.rel_after, out.iters, out.status, out.evals]
        scalars += [frame.frame_diff, frame.thumb_finite]
        if frame.ref_job is not None:
            scalars += [frame.ref_job.result.status, frame.ref_job.result.evals]
        return scalars

    def review(self, model: StreamableModel, values: list[float]) -> list[SolveJob]:
        """Judge the frame's solves from their :meth:`review_scalars`, read back as ``values``;
        return a second solve the shot policy asks for."""
        frame = self._frame
        frame.rel_before = values[0]
        self._take_outcome(frame, values[1:5])
        frame_diff, thumb_finite = values[5], values[6]
        if frame.ref_job is not None:
            frame.diverged |= int(values[7]) == SolverStatus.DIVERGED
            frame.evals += int(values[8])
        warm_residual = frame.rel_before if frame.warm and not frame.diverged else None
        frame.verdict = self.detector.judge(
            warm_residual,
            None if math.isnan(frame_diff) else frame_diff,
            thumb_finite != 0.0,  # NaN (no thumbnail) counts as finite: nothing to reject
        )
        if frame.diverged or not frame.verdict.changed or not frame.warm:
            return []
        return self._apply_shot_policy(frame, model)

    def _apply_shot_policy(self, frame: _Frame, model: StreamableModel) -> list[SolveJob]:
        shots = self.settings.shots
        if shots.policy == "reset":
            plan = IterationPlan(self.f_thres) if self.settings.mode == "keyframe" else frame.plan
            job = self._job(model.init_state(frame.injection), frame.injection, plan)
            frame.reset = ResetReason.SHOT_CHANGE
            frame.iters_before = 0
        elif shots.policy == "boost":
            plan = IterationPlan(shots.boost_iters, frame.plan.tol)
            job = self._job(frame.out_job.result.z, frame.injection, plan)
            frame.iters_before = frame.iters
            self.boost_left = shots.boost_frames
        else:
            return []
        frame.out_job = job
        frame.jobs.append(job)
        return [job]

    def _take_outcome(self, frame: _Frame, values: list[float]) -> None:
        """Record (rel_after, iters, status, evals) of the output solve, judge divergence."""
        rel_after, iters, status, evals = values
        frame.rel_after = rel_after
        frame.iters = int(iters)
        frame.status = SolverStatus(int(status))
        frame.evals += int(evals)
        frame.output_diverged = (
            frame.status is SolverStatus.DIVERGED
            or not math.isfinite(rel_after)
            or rel_after > self.settings.diverge_residual
        )
        frame.diverged = frame.output_diverged

    # ------------------------------------------------------------------ phase 3: settle

    def settle_scalars(self) -> list[Tensor | None]:
        """What :meth:`settle` reads back: the second solve's outcome ([] without one)."""
        frame = self._frame
        if frame.out_job is frame.jobs[0]:
            return []
        out = frame.out_job.result
        return [out.rel_after, out.iters, out.status, out.evals]

    def settle(self, values: list[float]) -> None:
        """Take the second solve's outcome, read back as ``values`` (no-op without one)."""
        if values:
            self._take_outcome(self._frame, values)

    def output_state(self) -> list[Tensor]:
        """The state the head sees: the solve's answer, or its start point if it diverged."""
        job = self._frame.out_job
        return job.z0 if self._frame.output_diverged else job.result.z

    # ------------------------------------------------------------------ phase 4: conclude

    def measured_timing(self, latency_ms: float) -> FrameTiming:
        """What the frame in progress cost: ``latency_ms`` of the whole step, its solves' time,
        evaluations and iterations."""
        frame = self._frame
        solve_ms = sum({job.result.group: job.result.solve_ms for job in frame.jobs}.values())
        return FrameTiming(latency_ms, solve_ms, frame.evals, frame.iters_before + frame.iters)

    def conclude(self, output: Tensor, timing: FrameTiming) -> StepResult:
        """Keep the new state and report the frame; ``output`` is the head's (1, ...) output,
        ``timing`` what the frame is charged (:meth:`measured_timing`, or a simulated price)."""
        frame = self._frame
        if frame.diverged:
            self.z = None
            self._pending = ResetReason.DIVERGENCE
            self.detector.forget_scene()
            self.boost_left = 0
        else:
            self._pending = None
            if frame.ref_job is not None:
                self.z = frame.ref_job.result.z
            elif self.settings.mode != "baseline":
                self.z = frame.out_job.result.z
        self.size = frame.inp.size
        self.controller.observe(timing)
        info = FrameInfo(
            index=self.index,
            iters=frame.iters_before + frame.iters,
            nfev=frame.evals,
            residual_before=frame.rel_before,
            residual_after=frame.rel_after,
            latency_ms=timing.latency_ms,
            solve_ms=timing.solve_ms,
            status=frame.status,
            reset=frame.reset,
            diverged=frame.diverged,
            shot_change=frame.verdict.changed,
            shot_score=frame.verdict.score,
        )
        self.index += 1
        self._frame = None
        output = self._to_frame(output, frame.inp)
        return StepResult(output=output[0], info=info)


def read_back_many(per_stream: list[list[Tensor | None]]) -> list[list[float]]:
    """Lists of 0-dim tensors (None: NaN) as lists of floats, in one device->host transfer per
    device: the scalars are stacked by device and dtype, so the work does not grow with the
    number of streams (a transfer per stream serialised a batched step on a GPU)."""
    flat = [s for scalars in per_stream for s in scalars]
    values = [math.nan] * len(flat)
    groups: dict[tuple, list[int]] = {}
    for i, scalar in enumerate(flat):
        if scalar is not None:
            groups.setdefault((scalar.device, scalar.dtype), []).append(i)
    by_device: dict[torch.device, list[tuple[list[int], Tensor]]] = {}
    for (device, _), rows in groups.items():
        with torch.no_grad():  # the step's results carry no graph; detaching each costs
            stacked = torch.stack([flat[i] for i in rows]).to(torch.float64)
        by_device.setdefault(device, []).append((rows, stacked))
    for parts in by_device.values():
        read = torch.cat([stacked for _, stacked in parts]).tolist()
        for i, value in zip([i for rows, _ in parts for i in rows], read, strict=True):
            values[i] = value
    out, start = [], 0
    for scalars in per_stream:
        out.append(values[start : start + len(scalars)])
        start += len(scalars)
    return out


def _forget_solver_memory(solver_options: Mapping[str, Any]) -> None:
    """A solve from zeros must not inherit memory (e.g. a carried ``BroydenMemory``) from the
    state it replaces: after a reset, a cut or a divergence that memory describes another
    scene, or holds non-finite values."""
    for value in solver_options.values():
        forget = getattr(value, "reset", None)
        if callable(forget):
            forget()
