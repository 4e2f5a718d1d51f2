"""Shot changes (cuts): detecting them in a stream and what to do about them.

Two signals, each compared with its own running level (an EWMA of its logarithm and of the
spread around it, fixed-size statistics, no history):

* "residual": the relative residual of the warm start, ||f(z_prev; x_t) - z_prev|| / ||f(...)||.
  It stays at a level set by the motion and by M while the scene continues, and jumps when the
  previous frame's representation no longer fits the new frame. It comes free with the solve
  (the solver evaluates f at the start point anyway), so it is only known after the solve.
* "frame": the mean absolute difference of two consecutive frames shrunk to a small thumbnail
  (values in [0, 1]): a cut changes the colours of whole regions at once.

A signal's score is its jump above the running level, in units of the larger of ``sigmas``
running standard deviations and log(``min_ratio``); a frame is declared a shot change when a
score reaches 1, which needs ``warmup`` frames of statistics first. Only upward jumps count: the
residual decays after a reset, which is not a change.

Policies: "keep" (report only), "reset" (solve the frame again from zeros, as if it were the
first), "boost" (``boost_iters`` more iterations now and for the next ``boost_frames`` frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_choice, check_int, check_real

POLICIES = ("keep", "reset", "boost")
SIGNALS = ("both", "residual", "frame", "off")

#: Floors of the logged signals: residuals below 1e-6 and frame differences below 1e-3 (a tenth
#: of a percent of the intensity range) are noise, and log(0) must not be the running level.
RESIDUAL_FLOOR = 1e-6
DIFFERENCE_FLOOR = 1e-3


@dataclass(frozen=True)
class ShotSettings:
    """Shot-change detection and policy.

    Attributes:
        policy: "keep", "reset" or "boost" (module docstring).
        detect: which signals: "both", "residual", "frame", or "off".
        min_ratio: a signal must at least multiply its running level by this to count.
        sigmas: ... and exceed it by this many running standard deviations (log scale). 3, not
            4: on bikes.mp4 (5 hard cuts), 4 missed the cut that follows a fast camera pan
            (whose motion widens the running spread); 3 finds all 5 with no false alarm, 2 adds
            false alarms.
        warmup: frames of statistics a signal needs before it can declare a change.
        smoothing: weight of the newest frame in the running statistics.
        boost_iters: extra iterations per frame under the "boost" policy.
        boost_frames: frames after the change that also get them.
        thumb_size: side of the thumbnail the frame difference is computed on.
    """

    policy: str = "keep"
    detect: str = "both"
    min_ratio: float = 3.0
    sigmas: float = 3.0
    warmup: int = 3
    smoothing: float = 0.1
    boost_iters: int = 4
    boost_frames: int = 3
    thumb_size: int = 16

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, POLICIES, label="shot policy")
        check_choice("detect", self.detect, SIGNALS, label="shot detect")
        check_real("min_ratio", self.min_ratio, exclusive_minimum=1, label="shot min_ratio")
        check_real("sigmas", self.sigmas, minimum=0, label="shot sigmas")
        check_real(
            "smoothing", self.smoothing, exclusive_minimum=0, maximum=1, label="shot smoothing"
        )
        check_int("warmup", self.warmup, label="shot warmup")
        check_int("boost_iters", self.boost_iters, label="shot boost_iters")
        check_int("boost_frames", self.boost_frames, minimum=0, label="shot boost_frames")
        check_int("thumb_size", self.thumb_size, label="shot thumb_size")


@dataclass(frozen=True)
class ShotVerdict:
    """``changed``: a shot change was declared; ``score``: the larger signal score (>= 1 means
    a change; NaN when no signal could be scored, e.g. during warm-up)."""

    changed: bool
    score: float


class RunningLevel:
    """EWMA of a (log-scale) signal and of its variance: three numbers, whatever the length of
    the stream."""

    def __init__(self, smoothing: float) -> None:
        self.smoothing = smoothing
        self.clear()

    def clear(self) -> None:
        self.mean: float | None = None
        self.var = 0.0
        self.count = 0

    def score(self, value: float, sigmas: float, min_jump: float, warmup: int) -> float:
        if self.mean is None or self.count < warmup:
            return math.nan
        return (value - self.mean) / max(sigmas * math.sqrt(self.var), min_jump)

    def add(self, value: float) -> None:
        self.count += 1
        if self.mean is None:
            self.mean = value
            return
        diff = value - self.mean
        self.mean += self.smoothing * diff
        self.var = (1.0 - self.smoothing) * (self.var + self.smoothing * diff * diff)


class ShotDetector:
    """The per-stream detector: the previous thumbnail and the two running levels."""

    def __init__(self, settings: ShotSettings) -> None:
        self.settings = settings
        self.residual_level = RunningLevel(settings.smoothing)
        self.frame_level = RunningLevel(settings.smoothing)
        self.prev_thumb: Tensor | None = None
        self._thumb: Tensor | None = None

    @property
    def uses_residual(self) -> bool:
        return self.settings.detect in ("both", "residual")

    @property
    def uses_frame(self) -> bool:
        return self.settings.detect in ("both", "frame")

    def frame_difference(self, unit: Tensor) -> Tensor | None:
        """The mean absolute thumbnail difference to the previous frame, a 0-dim tensor left on
        the device (read back with the solver's results); None without a previous frame."""
        if not self.uses_frame:
            return None
        thumb = F.adaptive_avg_pool2d(unit, self.settings.thumb_size)
        self._thumb = thumb
        if self.prev_thumb is None or self.prev_thumb.shape != thumb.shape:
            return None
        return (thumb - self.prev_thumb).abs().mean()

    def thumb_is_finite(self) -> Tensor | None:
        return None if self._thumb is None else torch.isfinite(self._thumb).all()

    def judge(
        self, residual_before: float | None, frame_diff: float | None, thumb_finite: bool
    ) -> ShotVerdict:
        """Score this frame's signals, declare a change or not, and update the statistics.

        ``residual_before`` is None when the frame did not start from a warm state (a reset, the
        baseline scheme): a start from zeros says nothing about the scene.
        """
        settings = self.settings
        signals: list[tuple[RunningLevel, float]] = []
        if self.uses_residual and residual_before is not None and math.isfinite(residual_before):
            signals.append((self.residual_level, math.log(residual_before + RESIDUAL_FLOOR)))
        if self.uses_frame and frame_diff is not None and math.isfinite(frame_diff):
            signals.append((self.frame_level, math.log(frame_diff + DIFFERENCE_FLOOR)))
        min_jump = math.log(settings.min_ratio)
        scores = [
            level.score(value, settings.sigmas, min_jump, settings.warmup)
            for level, value in signals
        ]
        scores = [s for s in scores if not math.isnan(s)]
        score = max(scores) if scores else math.nan
        changed = bool(scores) and score >= 1.0
        if changed:
            # the residual level belonged to the old scene; the frame level describes motion,
            # which a cut does not change, so it only skips the cut itself
            self.residual_level.clear()
        else:
            for level, value in signals:
                level.add(value)
        if thumb_finite and self._thumb is not None:
            self.prev_thumb = self._thumb
        self._thumb = None
        return ShotVerdict(changed=changed, score=score)

    def forget_scene(self) -> None:
        """After a state reset: the warm-start residual starts a new level."""
        self.residual_level.clear()

    def forget_all(self) -> None:
        """A new source (manual reset, new frame size): no previous frame, no statistics."""
        self.residual_level.clear()
        self.frame_level.clear()
        self.prev_thumb = None
        self._thumb = None
