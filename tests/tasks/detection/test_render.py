from __future__ import annotations

import math

import numpy as np
import torch

from streamdeq.tasks import renderer_for
from streamdeq.tasks.detection import BoxRenderer


class _Detector:
    class config:  # stands in for a DetectorConfig
        task = "detection"
        class_ids = (11, 13)
        class_names = ("person", "car")


def _output(scores):
    n = len(scores)
    boxes = torch.tensor(
        [[2.0, 2.0, 20.0, 20.0], [30.0, 5.0, 50.0, 25.0], [56.0, 26.0, 62.0, 31.0]]
    )[:n]
    return {
        "boxes": boxes,
        "scores": torch.tensor(scores),
        "labels": torch.tensor([11, 13, 13])[:n],
    }


def test_detect_task_picks_the_box_renderer_for_a_detector():
    task, renderer = renderer_for(_Detector())
    assert task == "detect" and isinstance(renderer, BoxRenderer)


def test_box_renderer_draws_only_confident_boxes_and_counts_them():
    frame = np.zeros((32, 64, 3), dtype=np.uint8)
    drawn, stats = BoxRenderer(_Detector()).render(frame, _output([0.9, 0.7, 0.2]))
    assert stats == {"detections": 2, "top_score": stats["top_score"]}
    assert math.isclose(stats["top_score"], 0.9, rel_tol=1e-6)
    assert drawn.shape == frame.shape and drawn.any()
    assert not drawn[26:31, 56:62].any()  # the low-scoring box is not drawn


def test_box_renderer_of_no_detections_leaves_the_frame_and_reports_nan():
    frame = np.full((32, 64, 3), 7, dtype=np.uint8)
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }
    drawn, stats = BoxRenderer(_Detector()).render(frame, empty)
    assert np.array_equal(drawn, frame)
    assert stats["detections"] == 0 and math.isnan(stats["top_score"])
