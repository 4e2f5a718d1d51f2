"""Drawing a detector's output for ``streamdeq run --task detect``: boxes with class names and
scores over the frame (the detection task's renderer).

The detector keeps every box above its own low post-processing threshold (0.05, for mAP);
drawing those would bury the frame, so the renderer shows the boxes scoring at least
``min_score`` and reports how many there were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...data import draw_boxes

#: Boxes scoring below this are not drawn (nor counted in the stats).
DEFAULT_MIN_SCORE = 0.5


class BoxRenderer:
    """Boxes coloured by class with "name 0.87" captions.

    Stats columns: ``detections`` (boxes drawn) and ``top_score`` (the best score, NaN when the
    detector found nothing).
    """

    columns = ("detections", "top_score")

    def __init__(self, model: Any, min_score: float = DEFAULT_MIN_SCORE) -> None:
        config = model.config
        ids = [int(i) for i in config.class_ids]
        # draw_boxes looks names up by class id; the ids need not be contiguous
        names = [f"class {k}" for k in range(max(ids) + 1)]
        for class_id, name in zip(ids, config.class_names, strict=True):
            names[class_id] = name
        self.class_names = names
        self.min_score = min_score

    def render(self, frame: np.ndarray, output: dict) -> tuple[np.ndarray, dict[str, Any]]:
        scores = output["scores"].detach().float().cpu().numpy()
        keep = scores >= self.min_score
        boxes = output["boxes"].detach().float().cpu().numpy()[keep]
        labels = output["labels"].detach().cpu().numpy()[keep]
        drawn = draw_boxes(frame, boxes, labels, scores[keep], self.class_names)
        top = float(scores.max()) if scores.size else float("nan")
        return drawn, {"detections": int(keep.sum()), "top_score": top}
