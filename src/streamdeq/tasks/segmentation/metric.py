"""Scoring segmentation outputs in the experiments: mIoU and pixel accuracy from one confusion
matrix over every scored frame, as the official Cityscapes evaluation does."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.labels import IGNORE_INDEX
from ...eval.segmentation import ConfusionMatrix


class SegmentationMetric:
    """Confusion matrix of (ground truth, prediction) over the scored frames.

    ``update(logits, label)``: (classes, h, w) logits as the stream returns them, upsampled
    bilinearly to the (H, W) label map before the argmax (the official evaluation's order);
    pixels labelled :data:`IGNORE_INDEX` are not scored.
    """

    def __init__(self, num_classes: int) -> None:
        self.matrix = ConfusionMatrix(num_classes=num_classes, ignore_index=IGNORE_INDEX)

    def update(self, output: Tensor, target: Any) -> None:
        label = as_label_tensor(target)
        self.matrix.update(predict_labels(output, tuple(label.shape)), label)

    def all_reduce(self) -> None:
        self.matrix.all_reduce()

    def compute(self) -> dict[str, float | int]:
        return {
            "miou": float(self.matrix.miou()),
            "pixel_accuracy": float(self.matrix.pixel_accuracy()),
        }


def segmentation_metric(model: Any) -> SegmentationMetric:
    return SegmentationMetric(int(model.config.num_classes))


def predict_labels(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) int64 class ids from (classes, h, w) logits, upsampled bilinearly to ``size``
    as the official MDEQ evaluation does."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(
            logits[None].float(), size=size, mode="bilinear", align_corners=False
        )[0]
    return logits.argmax(dim=0)


def as_label_tensor(label: Any) -> Tensor:
    """A label map (numpy or tensor) as an int64 tensor."""
    if isinstance(label, Tensor):
        return label.to(torch.int64)
    return torch.from_numpy(np.ascontiguousarray(label)).to(torch.int64)
