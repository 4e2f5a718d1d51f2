"""Online streaming inference: one stream (:class:`StreamDEQ`) or many (:class:`StreamBatch`),
the paper's schemes, iteration budgets (fixed, tolerance, time), shot changes and divergence.

The flow of a frame: preprocess (normalise, pad) -> ``model.inject`` -> solver steps from the
stream's state -> ``model.head`` -> output cropped to the frame, with a :class:`FrameInfo`.
"""

from __future__ import annotations

from .batch import StreamBatch, UnknownStreamError
from .budget import (
    BudgetSettings,
    FixedIterations,
    FrameTiming,
    IterationController,
    IterationPlan,
    TimeBudget,
    ToleranceIterations,
)
from .engine import StreamDEQ
from .frames import IMAGENET_MEAN, IMAGENET_STD, FrameError, PreprocessSettings
from .info import FrameInfo, ResetReason, StepResult
from .protocol import StreamableModel
from .settings import DEFAULT_ITERS, MODES, StreamSettings
from .shots import POLICIES, ShotDetector, ShotSettings

__all__ = [
    "DEFAULT_ITERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODES",
    "POLICIES",
    "BudgetSettings",
    "FixedIterations",
    "FrameError",
    "FrameInfo",
    "FrameTiming",
    "IterationController",
    "IterationPlan",
    "PreprocessSettings",
    "ResetReason",
    "ShotDetector",
    "ShotSettings",
    "StepResult",
    "StreamBatch",
    "StreamDEQ",
    "StreamSettings",
    "StreamableModel",
    "TimeBudget",
    "ToleranceIterations",
    "UnknownStreamError",
]
