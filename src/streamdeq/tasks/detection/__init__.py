"""Object detection: Faster R-CNN + FPN on an MDEQ backbone; per image a dict of ``boxes``
(N, 4) x1 y1 x2 y2 in frame pixels, ``scores`` and ``labels``.

Registers, when imported: the task (renderer: boxes with class names and scores; metric: COCO AP
with AP@50 as the headline), its training task (``train.task: detection``) and the detector
models ``mdeq-det-tiny-synthetic`` and ``mdeq-det-xl-imagenet-vid``. The model code itself is the
detector family in :mod:`streamdeq.models.detection`.
"""

from __future__ import annotations

from ..base import Task
from ..registry import register_task
from .metric import DetectionMetric, detection_metric
from .models import register_models
from .predictions import BoxesPredictions
from .render import BoxRenderer
from .training import DetectionTask

TASK = Task(
    name="detection",
    short_name="detect",
    description="boxes with class names and scores",
    renderer=BoxRenderer,
    metric=detection_metric,
    predictions=BoxesPredictions(),
    training=DetectionTask,
    headline="map50",
    headline_label="mAP@50",
    target_key="boxes",
)

register_task(TASK)
register_models()

__all__ = ["TASK", "BoxRenderer", "DetectionMetric", "DetectionTask"]
