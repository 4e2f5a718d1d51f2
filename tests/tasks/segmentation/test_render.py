"""Per-task renderers: segmentation drawn in the Cityscapes palette, and the task registry that
picks a renderer for a model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from streamdeq.data import CITYSCAPES_PALETTE
from streamdeq.errors import SettingsError
from streamdeq.tasks import TASKS, Task, register_task, renderer_for
from streamdeq.tasks.segmentation import TASK, SegmentationRenderer, segmentation_labels


def fake_model(task: str = "segmentation", num_classes: int = 19) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(task=task, num_classes=num_classes))


def halves_logits(left: int, right: int, h: int = 4, w: int = 8) -> torch.Tensor:
    """(19, h, w) logits: class ``left`` wins on the left half, ``right`` on the right."""
    logits = torch.zeros(19, h, w)
    logits[left, :, : w // 2] = 5.0
    logits[right, :, w // 2 :] = 5.0
    return logits


def test_labels_are_upsampled_to_the_frame_and_take_the_argmax():
    labels = segmentation_labels(halves_logits(0, 13), (16, 32))
    assert labels.shape == (16, 32) and labels.dtype == np.uint8
    assert (labels[:, :12] == 0).all() and (labels[:, 20:] == 13).all()


def test_segmentation_blends_each_class_colour_over_the_frame():
    frame = np.full((16, 32, 3), 100, dtype=np.uint8)
    renderer = SegmentationRenderer(fake_model(), alpha=1.0, legend=False)
    drawn, _ = renderer.render(frame, halves_logits(2, 13))
    assert tuple(drawn[8, 2]) == CITYSCAPES_PALETTE[2]
    assert tuple(drawn[8, 30]) == CITYSCAPES_PALETTE[13]
    assert frame.max() == frame.min() == 100  # the input frame is not changed


def test_legend_is_drawn_in_the_top_left_corner():
    frame = np.full((64, 128, 3), 100, dtype=np.uint8)
    with_legend, _ = SegmentationRenderer(fake_model()).render(frame, halves_logits(2, 13))
    without, _ = SegmentationRenderer(fake_model(), legend=False).render(
        frame, halves_logits(2, 13)
    )
    assert not np.array_equal(with_legend[:20, :40], without[:20, :40])
    assert np.array_equal(with_legend[-10:, -10:], without[-10:, -10:])


def test_stats_count_classes_and_the_share_of_pixels_that_changed_class():
    frame = np.zeros((16, 32, 3), dtype=np.uint8)
    renderer = SegmentationRenderer(fake_model())
    assert renderer.columns == ("classes_in_view", "label_change")
    _, first = renderer.render(frame, halves_logits(2, 13))
    _, same = renderer.render(frame, halves_logits(2, 13))
    _, half_changed = renderer.render(frame, halves_logits(2, 5))
    assert first["classes_in_view"] == 2 and math.isnan(first["label_change"])
    assert same["label_change"] == 0.0
    assert half_changed["label_change"] == pytest.approx(0.5)


def test_models_with_more_classes_than_cityscapes_get_distinct_extra_colours():
    renderer = SegmentationRenderer(fake_model(num_classes=25))
    assert renderer.palette[:19] == CITYSCAPES_PALETTE
    assert len(renderer.palette) == len(renderer.class_names) == 25


def test_the_renderer_follows_the_model_task_by_default():
    task, renderer = renderer_for(fake_model())
    assert task == "segment" and isinstance(renderer, SegmentationRenderer)


def test_a_registered_renderer_serves_its_model_task():
    class Scores:
        columns = ("top",)

        def __init__(self, model):
            self.model = model

        def render(self, frame, output):
            return frame, {"top": int(output.argmax())}

    register_task(Task("classification-test", "classify-test", renderer=Scores))
    try:
        task, renderer = renderer_for(fake_model("classification-test", 10))
        assert task == "classify-test"
        assert renderer.render(np.zeros((2, 2, 3), np.uint8), torch.arange(10))[1] == {"top": 9}
        assert renderer_for(fake_model("classification-test", 10), "classification-test")[0] == (
            "classify-test"
        )
    finally:
        TASKS.unregister("classification-test")  # leave no trace


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(SettingsError, match="unknown task 'nope'.*segment"):
        renderer_for(fake_model(), "nope")


def test_a_task_that_cannot_draw_the_model_output_is_refused():
    with pytest.raises(SettingsError, match="draws segmentation outputs"):
        renderer_for(fake_model("detection"), "segment")


def test_registering_a_task_twice_needs_overwrite():
    with pytest.raises(SettingsError, match="already registered"):
        register_task(TASK)
