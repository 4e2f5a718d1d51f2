"""The schemes every experiment runs a model under, and what it reads from them: run a scheme
over a clip, read the state each frame ends with, compare it with the fully solved one.

The schemes themselves are :class:`streamdeq.stream.StreamDEQ`'s modes; this module only adds a
window onto the states (:class:`StateTap`) and the measures.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from ..stream import StreamBatch, StreamDEQ
from ..stream.shots import ShotSettings
from .clips import Clip

#: The paper's iterations per frame, M.
PAPER_ITERS = (1, 2, 4, 8)

#: Shot detection stays off in the experiments: a detected change must not alter a scheme.
NO_SHOTS = ShotSettings(policy="keep", detect="off")


class StateTap:
    """A streamable model whose ``head`` keeps the state it is given.

    The stream engine hands each frame's final state z (a list of (1, C_i, H_i, W_i) tensors)
    to ``model.head``; the distance analyses need that state, which no stream mode exposes for
    every scheme (baseline keeps none, reference keeps the full solve). Everything else is the
    wrapped model's.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self.last_state: list[Tensor] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def head(self, z: Sequence[Tensor]) -> Tensor:
        # clone: a solver may hand out views of buffers it reuses on the next frame
        self.last_state = [t.detach().clone() for t in z]
        return self._model.head(z)


@dataclass(frozen=True)
class Scheme:
    """One way of running a clip: a StreamDEQ mode with M (and N for the baseline).

    Attributes:
        mode: "stream" (Eq. 5), "keyframe" (Eq. 4), "baseline" or "reference" (Eq. 3).
        iters: M; for "baseline" the iterations of every from-zeros solve (None: N, the model's
            full solve; an M here is the non-streaming model at M iterations).
    """

    mode: str
    iters: int | None = None

    @property
    def label(self) -> str:
        if self.mode == "baseline":
            return "baseline (N)" if self.iters is None else "non-streaming"
        return {"stream": "StreamDEQ (Eq. 5)", "keyframe": "keyframe (Eq. 4)"}.get(
            self.mode, self.mode
        )

    def settings(self, **options: Any) -> dict[str, Any]:
        """StreamDEQ / StreamBatch keyword settings of this scheme, ``options`` added."""
        settings = {"shots": NO_SHOTS, **options, "mode": self.mode}
        if self.mode == "baseline":
            if self.iters is not None:
                settings["f_thres"] = self.iters
        else:
            settings["iters"] = self.iters
        return settings

    def open(self, model: Any, **options: Any) -> StreamDEQ:
        """A fresh stream of ``model`` under this scheme (``options``: StreamDEQ settings)."""
        return StreamDEQ(model, **self.settings(**options))


@dataclass
class FrameOutput:
    """One frame of a scheme's run: its logits, final state and report."""

    index: int
    logits: Tensor  # (classes, h, w)
    state: list[Tensor]  # (1, C_i, H_i, W_i) per branch
    info: Any  # FrameInfo


def run_clip(
    tap: StateTap,
    scheme: Scheme,
    frames: Sequence[np.ndarray] | np.ndarray,
    start: int = 0,
    **options: Any,
) -> Iterator[FrameOutput]:
    """Run ``frames[start:]`` through a fresh stream of ``scheme``; yields each frame's output."""
    stream = scheme.open(tap, **options)
    for index in range(start, len(frames)):
        result = stream.step(frames[index])
        yield FrameOutput(index, result.output, tap.last_state, result.info)


@dataclass(frozen=True)
class Run:
    """One stream to run: ``frames`` in order under ``scheme``; ``key`` names it."""

    key: Hashable
    scheme: Scheme
    frames: Sequence[np.ndarray] | np.ndarray


def run_last_frames(
    model: Any, runs: Sequence[Run], max_streams: int = 32, **options: Any
) -> dict[Hashable, Any]:
    """The output of each run's last frame (as the stream returns it: logits, detections, ...),
    the runs stepped together in batches.

    Why batched: sweeps such as Fig. 5 run hundreds of short independent streams; stepping
    them together (:class:`streamdeq.stream.StreamBatch`, at most ``max_streams`` at a time,
    aligned so that they end together) lets the streams that are at the same iteration plan
    share each solver call, which cuts the CPU time and fills a GPU. Each stream's results are
    its own (the solvers treat batch rows independently).
    """
    ordered = sorted(runs, key=lambda run: (repr(run.scheme), -len(run.frames)))
    outputs: dict[Hashable, Any] = {}
    for first in range(0, len(ordered), max_streams):
        chunk = ordered[first : first + max_streams]
        batch = StreamBatch(model)
        for run in chunk:
            batch.add_stream(run.key, **run.scheme.settings(**options))
        length = max(len(run.frames) for run in chunk)
        for t in range(length):
            frames = {
                run.key: run.frames[t - (length - len(run.frames))]
                for run in chunk
                if t >= length - len(run.frames)
            }
            results = batch.step(frames)
        outputs.update({key: result.output for key, result in results.items()})
    return outputs


def reference_states(tap: StateTap, clip: Clip, **options: Any) -> list[FrameOutput]:
    """z*_t of every frame: the fully solved representation (N iterations from zeros)."""
    return list(run_clip(tap, Scheme("baseline"), clip.frames, **options))


def relative_distance(z: Sequence[Tensor], z_ref: Sequence[Tensor]) -> float:
    """||z - z_ref|| / ||z_ref||, all branches taken as one vector (the paper's measure)."""
    num = sum(float((a.double() - b.double()).pow(2).sum()) for a, b in zip(z, z_ref, strict=True))
    den = sum(float(b.double().pow(2).sum()) for b in z_ref)
    return math.sqrt(num / den) if den > 0 else math.inf


def zero_distance(z_ref: Sequence[Tensor]) -> float:
    """The distance of the zero state: 1 (NaN only for a zero reference)."""
    return 1.0 if any(bool(t.any()) for t in z_ref) else math.nan


def check_iters(iters: Sequence[int]) -> list[int]:
    """The distinct M of ``iters``, sorted; each must be an integer >= 1."""
    from ..errors import SettingsError
    from ..validation import check_int

    values = list(iters)
    if not values:
        raise SettingsError("iterations per frame: give at least one M", field="iters")
    for m in values:
        check_int("iters", m, label="iterations per frame")
    return sorted(set(values))


__all__ = [
    "NO_SHOTS",
    "PAPER_ITERS",
    "FrameOutput",
    "Run",
    "Scheme",
    "StateTap",
    "check_iters",
    "reference_states",
    "relative_distance",
    "run_clip",
    "run_last_frames",
    "zero_distance",
]
