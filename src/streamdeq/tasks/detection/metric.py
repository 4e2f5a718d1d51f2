"""Scoring detections in the experiments: COCO AP (faster-coco-eval) with AP@50 as the headline,
as ImageNet VID reports mAP@50, and the VOC-style all-point AP@50 beside it as a cross-check."""

from __future__ import annotations

from typing import Any

from ...eval.detection import DetectionAccumulator


class DetectionMetric:
    """Detections of the scored frames against their boxes.

    ``update(detections, target)``: one frame's dict (``boxes`` (N, 4) x1 y1 x2 y2 pixels,
    ``scores``, ``labels``) as the stream returns it, and the frame's ground truth dict
    (``boxes``, ``labels``).
    """

    def __init__(self) -> None:
        self.accumulator = DetectionAccumulator()

    def update(self, output: Any, target: Any) -> None:
        self.accumulator.update([output], [target])

    def all_reduce(self) -> None:
        self.accumulator.all_gather()

    def compute(self) -> dict[str, float | int]:
        metrics = self.accumulator.compute()
        return {
            "map50": metrics.map50,
            "map": metrics.map,
            "voc_map50": metrics.voc_map50,
            "num_images": metrics.num_images,
        }


def detection_metric(model: Any) -> DetectionMetric:
    return DetectionMetric()
