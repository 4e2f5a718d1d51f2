"""Drawing segmentation logits on their frame: class colours with a legend of the classes in
view, for ``streamdeq run`` and the demo."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, draw_legend, overlay_segmentation

#: Classes covering less of the frame than this share are left out of the legend.
LEGEND_MIN_SHARE = 0.005


class SegmentationRenderer:
    """Per-pixel classes over the frame in the Cityscapes palette, with a legend of the classes
    in view.

    The logits (classes, h, w) arrive at the model's output resolution (1/4 of the frame for
    MDEQ); they are upsampled bilinearly to the frame before the argmax, as the official
    evaluation does, so class borders are smooth rather than 4-pixel blocks.

    Stats columns: ``classes_in_view`` (classes with at least one pixel) and ``label_change``
    (share of pixels whose class differs from the previous frame's: flicker, the temporal
    consistency a warm-started stream should improve; NaN on the first frame and after a size
    change).
    """

    columns = ("classes_in_view", "label_change")

    def __init__(self, model: Any, alpha: float = 0.5, legend: bool = True) -> None:
        num_classes = int(model.config.num_classes)
        self.class_names = _class_names(num_classes)
        self.palette = _palette(num_classes)
        self.alpha = alpha
        self.legend = legend
        self._previous: np.ndarray | None = None

    def render(self, frame: np.ndarray, output: Tensor) -> tuple[np.ndarray, dict[str, Any]]:
        labels = segmentation_labels(output, frame.shape[:2])
        drawn = overlay_segmentation(frame, labels, self.alpha, self.palette)
        counts = np.bincount(labels.ravel(), minlength=len(self.class_names))
        if self.legend:
            in_view = np.flatnonzero(counts >= LEGEND_MIN_SHARE * labels.size)
            drawn = draw_legend(drawn, in_view.tolist(), self.class_names, self.palette)
        change = float("nan")
        if self._previous is not None and self._previous.shape == labels.shape:
            change = float(np.count_nonzero(self._previous != labels)) / labels.size
        self._previous = labels
        return drawn, {"classes_in_view": int(np.count_nonzero(counts)), "label_change": change}


def segmentation_labels(logits: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(classes, h, w) logits -> (H, W) class map at ``size`` = (H, W), upsampled bilinearly;
    uint8 (int32 for more than 256 classes)."""
    if logits.dim() != 3:
        raise ValueError(f"expected (classes, h, w) logits, got {tuple(logits.shape)}")
    with torch.no_grad():
        scores = logits[None].float()
        if tuple(scores.shape[-2:]) != tuple(size):
            scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        labels = scores[0].argmax(dim=0)
    dtype = torch.uint8 if logits.shape[0] <= 256 else torch.int32
    return labels.to(device="cpu", dtype=dtype).numpy()


def _class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes == len(CITYSCAPES_CLASSES):
        return CITYSCAPES_CLASSES
    return tuple(f"class {k}" for k in range(num_classes))


def _palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Cityscapes colours, then seeded random ones for models with more classes."""
    extra = max(0, num_classes - len(CITYSCAPES_PALETTE))
    rng = np.random.default_rng(0)
    more = [tuple(int(v) for v in rng.integers(40, 256, size=3)) for _ in range(extra)]
    return (*CITYSCAPES_PALETTE, *more)[: max(num_classes, 1)]
