"""Fig. 8 and the detection column of Table 1: the paper's accuracy experiments on a streamed
detector, under the names users know them by.

They are :func:`~streamdeq.experiments.fig5.fig5` (StreamDEQ only, no keyframe scheme) and
:func:`~streamdeq.experiments.table1.table1` run on a detector, which score it with the
detection task's metric: COCO AP@50 (faster-coco-eval) as the reported number, as ImageNet VID
reports mAP@50, with COCO AP and the VOC-style all-point AP@50 beside it. These entries only
check that the model is a detector and accept the segmentation experiments' generated clips
(drawn again with their boxes, see :func:`with_boxes`).

The detector is any streamable model of the detection task whose ``head`` returns one dict per
image with ``boxes`` (N, 4) x1 y1 x2 y2 in frame pixels, ``scores`` and ``labels`` (see
:class:`streamdeq.models.detection.MDEQDetector`); clips are :class:`DetectionClip` lists:
generated street scenes (:func:`generated_detection_clips`) or ImageNet VID clips
(:func:`vid_detection_clips`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Any

from ..errors import SettingsError
from ..tasks import task_of
from .detection_clips import (
    DetectionClip,
    detection_clip_from_item,
    generated_detection_clips,
    vid_detection_clips,
    with_boxes,
)
from .fig5 import fig5, plot_fig5
from .result import ExperimentResult
from .schemes import PAPER_ITERS
from .table1 import plot_accuracy_vs_speed, table1

#: The task these entries score, and a model of it to suggest.
DETECTION = "detection"
EXAMPLE_DETECTOR = "mdeq-det-tiny-synthetic"

#: The experiments that take a detector only (by their command-line names).
DETECTION_ONLY = ("fig8", "table1-detect")


def fig8(
    model: Any,
    clips: Sequence[Any],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    offsets: Sequence[int] | None = None,
    **stream_options: Any,
) -> ExperimentResult:
    """mAP@50 on each clip's last frame against the number of frames the stream has run:
    :func:`~streamdeq.experiments.fig5.fig5` of StreamDEQ on a detector.

    Args:
        model: a streamable detector in eval mode.
        clips: clips whose last frame has boxes (the paper: 20 frames ending at it).
        iters: the M to compare.
        offsets: stream lengths k (1 .. the shortest clip); default every k. Each costs a run
            of k frames per clip and M.
        stream_options: StreamDEQ settings (solver, f_thres, ...).

    Returns:
        rows (scheme, mode, M, offset, map50, map, voc_map50, num_images); the two references
        have an empty offset, and the baseline an empty M (it runs N = ``meta["f_thres"]``).
    """
    require_detector("fig8", model)
    result = fig5(
        model, with_boxes(clips), iters=iters, offsets=offsets, modes=("stream",), **stream_options
    )
    plot = partial(
        plot_fig5, metric="map50", label="mAP@50", title="Fig. 8: detection, mAP@50 against offset"
    )
    return dataclasses.replace(result, name="fig8", plotter=plot)


def table1_detect(model: Any, clips: Sequence[Any], **options: Any) -> ExperimentResult:
    """mAP@50, frames/s and speed-up of StreamDEQ at each M against the fully solved baseline:
    :func:`~streamdeq.experiments.table1.table1` on a detector, with its arguments (``iters``,
    ``non_streaming``, ``evaluate``, stream settings).

    Returns:
        rows (scheme, mode, M, iters_per_frame, map50, map, voc_map50, num_images,
        ms_per_frame, fps, speedup); the baseline first, its speed-up 1.
    """
    require_detector("table1-detect", model)
    result = table1(model, with_boxes(clips), **options)
    plot = partial(
        plot_accuracy_vs_speed,
        metric="map50",
        ylabel="mAP@50",
        title="Table 1 (detection): accuracy against speed",
    )
    return dataclasses.replace(result, name="table1_detect", plotter=plot)


def require_detector(experiment: str, model: Any) -> None:
    """Raise :class:`SettingsError` in one line unless ``model`` is a detection model."""
    task = task_of(model)
    if task.name != DETECTION:
        raise SettingsError(
            f"{experiment} scores detections, but the model is a {task.name} model: give a "
            f"detection model such as --model {EXAMPLE_DETECTOR}"
        )


__all__ = [
    "DetectionClip",
    "detection_clip_from_item",
    "fig8",
    "generated_detection_clips",
    "require_detector",
    "table1_detect",
    "vid_detection_clips",
    "with_boxes",
]
