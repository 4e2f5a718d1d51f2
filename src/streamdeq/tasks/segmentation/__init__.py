"""Semantic segmentation: per-pixel class logits (classes, h, w) at 1/4 of the frame.

Registers, when imported: the task (renderer: class colours with a legend; metric: mIoU), its
training task (``train.task: segmentation``) and the bundled ``mdeq-seg-tiny-synthetic`` model.
"""

from __future__ import annotations

from ..base import Task
from ..registry import register_task
from .metric import SegmentationMetric, segmentation_metric
from .models import register_models
from .predictions import LabelMapPredictions
from .render import SegmentationRenderer, segmentation_labels
from .training import SegmentationTask

TASK = Task(
    name="segmentation",
    short_name="segment",
    description="class colours over the frame (Cityscapes palette) with a legend",
    renderer=SegmentationRenderer,
    metric=segmentation_metric,
    predictions=LabelMapPredictions(),
    training=SegmentationTask,
    headline="miou",
    headline_label="mIoU",
    target_key="label map",
)

register_task(TASK)
register_models()

__all__ = [
    "TASK",
    "SegmentationMetric",
    "SegmentationRenderer",
    "SegmentationTask",
    "segmentation_labels",
]
