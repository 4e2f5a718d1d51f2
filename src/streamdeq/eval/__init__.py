"""Scores of model outputs against ground truth: segmentation (confusion matrix, mIoU),
detection (mAP@50)."""

from __future__ import annotations

from .detection import DetectionAccumulator, DetectionMetrics, evaluate_detections
from .segmentation import ConfusionMatrix, LabelRangeError

__all__ = [
    "ConfusionMatrix",
    "DetectionAccumulator",
    "DetectionMetrics",
    "LabelRangeError",
    "evaluate_detections",
]
