"""Detection operators, written for this project (torchvision is not a dependency): box IoU,
box coding, (batched) NMS, RoIAlign, anchors. All vectorised: no Python loop over boxes."""

from __future__ import annotations

from .anchors import base_anchors, grid_anchors
from .boxes import box_area, box_iou, clip_boxes, remove_small_boxes
from .coding import BoxCoder
from .nms import batched_nms, nms
from .roi_align import roi_align

__all__ = [
    "BoxCoder",
    "base_anchors",
    "batched_nms",
    "box_area",
    "box_iou",
    "clip_boxes",
    "grid_anchors",
    "nms",
    "remove_small_boxes",
    "roi_align",
]
