"""Deprecated: moved to :mod:`streamdeq.experiments.schemes` (the old name read like the
``streamdeq.stream`` package); the label-map helpers moved to
:mod:`streamdeq.tasks.segmentation.metric`. This path works for one more release."""

from __future__ import annotations

from .._deprecated import warn_moved
from ..tasks.segmentation.metric import as_label_tensor, predict_labels
from .schemes import (
    NO_SHOTS,
    PAPER_ITERS,
    FrameOutput,
    Run,
    Scheme,
    StateTap,
    check_iters,
    reference_states,
    relative_distance,
    run_clip,
    run_last_frames,
    zero_distance,
)

warn_moved("streamdeq.experiments.streams", "streamdeq.experiments.schemes")

__all__ = [
    "NO_SHOTS",
    "PAPER_ITERS",
    "FrameOutput",
    "Run",
    "Scheme",
    "StateTap",
    "as_label_tensor",
    "check_iters",
    "predict_labels",
    "reference_states",
    "relative_distance",
    "run_clip",
    "run_last_frames",
    "zero_distance",
]
