"""One step of any number of streams: the model and solver calls they share.

``model.inject`` and ``model.head`` run once per group of streams whose frames have the same
(padded) size; the solves run once per group of jobs that agree on solver, plan and shapes
(:func:`streamdeq.stream.jobs.run_jobs`). A single stream is the same code with groups of one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import SettingsError
from .budget import FrameTiming, TimeBudget
from .frames import FrameInput, prepare_frames
from .info import StepResult
from .jobs import run_jobs, stack_rows
from .protocol import (
    StreamableModel,
    check_eval_mode,
    check_head_output,
    check_model,
    model_input_multiple,
)
from .state import StreamState, read_back_many

Clock = Callable[[], float]

#: What a step is charged: the measured FrameTiming of each stream stepped together -> the
#: timing to report and to feed the iteration controllers (same order, same length).
Pricing = Callable[[list[FrameTiming]], list[FrameTiming]]


@dataclass
class Runtime:
    """Where and how streams of one model run.

    Attributes:
        model: the streamable model (see :class:`StreamableModel`).
        device, dtype: of the frames and states (default: the model's parameters').
        clock: seconds, monotonic (default ``time.perf_counter``); injectable for tests.
        multiple: frames are padded to multiples of this (``model.input_multiple``).
        pricing: None (default): a step costs what was measured. Otherwise the step's measured
            timings are replaced by what this returns, before the controllers learn from them
            and the frames report them: how a simulated clock
            (:class:`streamdeq.streaming.clocks.SimulatedClock`) makes the time budget learn
            simulated costs, not this machine's. The model still runs; only time is priced.
    """

    model: StreamableModel
    device: torch.device
    dtype: torch.dtype
    clock: Clock = field(default=time.perf_counter)
    multiple: int = 1
    pricing: Pricing | None = None

    @classmethod
    def create(
        cls,
        model: StreamableModel,
        device: str | torch.device | None = None,
        clock: Clock | None = None,
        pricing: Pricing | None = None,
    ) -> Runtime:
        check_model(model)
        check_eval_mode(model)
        param = _first_parameter(model)
        model_device = param.device if param is not None else torch.device("cpu")
        if device is None:
            device = model_device
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise SettingsError(f"invalid device {device!r}: {err}") from None
        if param is not None and _differ(device, model_device):
            raise SettingsError(
                f"the model is on {model_device} but the stream on {device}; move the model "
                f"first (model.to({str(device)!r}))"
            )
        if clock is not None and not callable(clock):
            raise SettingsError("clock must be a callable returning seconds")
        if pricing is not None and not callable(pricing):
            raise SettingsError("pricing must be a callable taking and returning FrameTimings")
        return cls(
            model=model,
            device=device,
            dtype=param.dtype if param is not None else torch.float32,
            clock=clock or time.perf_counter,
            multiple=model_input_multiple(model),
            pricing=pricing,
        )

    def sync(self) -> None:
        """Wait for the device, so the clock measures finished work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def step_streams(
    runtime: Runtime, states: Sequence[StreamState], frames: Sequence[object]
) -> list[StepResult]:
    """Process one frame of each stream; ``states[i]`` gets ``frames[i]``."""
    model = runtime.model
    check_eval_mode(model)  # again: model.train() may have been called since the stream began
    start = runtime.clock()
    timed = any(isinstance(state.controller, TimeBudget) for state in states)
    solve_sync = runtime.sync if timed else _no_sync
    with torch.no_grad():
        inputs = prepare_frames(
            frames,
            [state.preprocess for state in states],
            runtime.multiple,
            runtime.device,
            runtime.dtype,
        )
        injections = _inject(model, inputs)
        jobs = [
            job
            for state, inp, injection in zip(states, inputs, injections, strict=True)
            for job in state.plan(inp, injection, model)
        ]
        run_jobs(model, jobs, runtime.clock, solve_sync)
        reviewed = read_back_many([state.review_scalars() for state in states])
        second = [
            job
            for state, values in zip(states, reviewed, strict=True)
            for job in state.review(model, values)
        ]
        if second:
            run_jobs(model, second, runtime.clock, solve_sync)
            settled = read_back_many([state.settle_scalars() for state in states])
            for state, values in zip(states, settled, strict=True):
                state.settle(values)
        outputs = _head(model, [state.output_state() for state in states])
        runtime.sync()
    latency_ms = (runtime.clock() - start) * 1000.0
    timings = [state.measured_timing(latency_ms) for state in states]
    if runtime.pricing is not None:
        timings = list(runtime.pricing(timings))
        if len(timings) != len(states):
            raise SettingsError(
                f"pricing returned {len(timings)} timings for a step of {len(states)} streams"
            )
    return [
        state.conclude(output, timing)
        for state, output, timing in zip(states, outputs, timings, strict=True)
    ]


def _inject(model: StreamableModel, inputs: list[FrameInput]) -> list[list[Tensor | None]]:
    """Per-stream injections, computed once per group of equally sized frames."""
    per_stream: list = [None] * len(inputs)
    for rows in _groups([tuple(inp.x.shape) for inp in inputs]):
        xs = [inputs[i].x for i in rows]
        injection = model.inject(xs[0] if len(xs) == 1 else torch.cat(xs, dim=0))
        for k, i in enumerate(rows):
            per_stream[i] = _row(injection, k, len(rows))
    return per_stream


def _head(model: StreamableModel, states: list[list[Tensor]]) -> list[Tensor]:
    """Per-stream (1, ...) head outputs, computed once per group of equally shaped states."""
    per_stream: list = [None] * len(states)
    for rows in _groups([tuple(tuple(t.shape) for t in z) for z in states]):
        output = model.head(stack_rows([states[i] for i in rows]))
        check_head_output(output, len(rows))
        for k, i in enumerate(rows):
            per_stream[i] = output if len(rows) == 1 else output[k : k + 1]
    return per_stream


def _row(batch: list[Tensor | None], k: int, bsz: int) -> list[Tensor | None]:
    if bsz == 1:
        return list(batch)
    return [None if t is None else t[k : k + 1] for t in batch]


def _groups(keys: list[tuple]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _first_parameter(model: object) -> Tensor | None:
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    return next(iter(parameters()), None)


def _differ(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return True
    return a.index is not None and b.index is not None and a.index != b.index


def _no_sync() -> None:
    pass
