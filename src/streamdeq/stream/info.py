"""What a stream reports about each frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from torch import Tensor

from ..solvers import SolverStatus


class ResetReason(StrEnum):
    """Why a frame started from zeros instead of the stream's state."""

    FIRST_FRAME = "first_frame"
    SIZE_CHANGE = "size_change"  # the frame size differs from the previous frame's
    SHOT_CHANGE = "shot_change"  # a detected cut under the "reset" policy (frame solved again)
    DIVERGENCE = "divergence"  # the previous frame diverged; its state was dropped
    MANUAL = "manual"  # reset() was called


@dataclass(frozen=True)
class FrameInfo:
    """Per-frame report of a stream.

    Attributes:
        index: the frame's number in this stream, from 0 (not restarted by resets).
        iters: solver iterations on the way to this frame's output (a boosted frame counts its
            extra iterations; a frame solved again after a cut counts the second solve only).
        nfev: evaluations of f spent on this frame, all solves included (the discarded solve
            before a reset, the reference scheme's full solve, ``measure_after``).
        residual_before: relative residual ||f(z0) - z0|| / ||f(z0)|| of the frame's start point
            (the warm start's; 1.0 for a start from zeros).
        residual_after: relative residual of the last iterate the solver evaluated, which is
            not the state it returns: with a fixed budget the fixed-point, Anderson and
            efficient Broyden solvers spend their M evaluations of f on iterates 0 ... M-1 and
            return iterate M, whose residual would cost one more evaluation. So this is the
            residual of iterate M-1, and **at M = 1 it is the start point's, equal to
            residual_before**. Set ``measure_after=True`` for the residual of the returned
            state itself (one more evaluation of f a frame: at M = 1 twice the solver's cost);
            Broyden with ``parity=True`` evaluates f M + 1 times, so there it is iterate M's.
        latency_ms: wall time of the step, frame in to output out (in a batch: the batch step).
        solve_ms: the part of it spent in the solver.
        status: the solver's verdict on the output solve (CONVERGED, MAX_ITER, DIVERGED).
        reset: why this frame started from zeros, or None if it continued the stream.
        diverged: a solve of the frame blew up (NaN/Inf, the solver's own test, or a relative
            residual above ``diverge_residual``): the state is dropped and the next frame
            starts from zeros (its ``reset`` is DIVERGENCE). If the output's own solve blew up,
            the output is the head of its start point instead (finite, never NaN).
        shot_change: a shot change was detected at this frame (whatever the policy).
        shot_score: the detector's score (>= 1 is a change; NaN while it cannot judge).
    """

    index: int
    iters: int
    nfev: int
    residual_before: float
    residual_after: float
    latency_ms: float
    solve_ms: float
    status: SolverStatus
    reset: ResetReason | None
    diverged: bool
    shot_change: bool
    shot_score: float

    def as_row(self) -> dict[str, object]:
        """A flat dict of plain values (strings for the enums), for CSV or JSON lines: the
        columns of a stats file, one per attribute above, with their meanings (note
        ``residual_after`` at M = 1)."""
        row = asdict(self)
        row["status"] = self.status.name.lower()
        # None, not "": a stats file has one convention for a missing value (null in JSON,
        # an empty cell in CSV), and the sink, not the row, knows which it writes
        row["reset"] = None if self.reset is None else self.reset.value
        return row


@dataclass(frozen=True)
class StepResult:
    """One frame's output.

    Attributes:
        output: the model head's output for the frame without the batch dimension, e.g.
            (classes, h, w) segmentation logits, cropped to the frame if it was padded.
        info: the frame's :class:`FrameInfo`.
    """

    output: Tensor
    info: FrameInfo
