"""Tasks plug into the one trainer: a registered task's loss trains the model."""

from __future__ import annotations

import pytest

from streamdeq.tasks.segmentation import SegmentationTask
from streamdeq.train import RecipeError, get_task, register_task, train


class RecordingSegmentation(SegmentationTask):
    """Segmentation whose loss calls are counted (a stand-in for another task's loss)."""

    calls = 0

    def loss(self, output, batch):
        RecordingSegmentation.calls += 1
        loss, parts = super().loss(output, batch)
        return loss, {**parts, "recorded": float(RecordingSegmentation.calls)}


register_task("recording-segmentation", RecordingSegmentation, overwrite=True)


def test_a_registered_task_supplies_the_loss_of_every_step(tiny_recipe):
    RecordingSegmentation.calls = 0
    result = train(tiny_recipe(train={"task": "recording-segmentation"}, schedule={"max_steps": 3}))
    assert RecordingSegmentation.calls == 3
    assert result.last_log["recorded"] == 3.0


def test_an_unknown_task_lists_the_known_ones():
    with pytest.raises(RecipeError, match="segmentation"):
        get_task("panoptic")


def test_a_classification_model_is_refused_by_the_segmentation_task(tiny_recipe):
    recipe = tiny_recipe(model={"name": "mdeq-cls-tiny-cifar", "overrides": {}})
    with pytest.raises(RecipeError, match="classification model"):
        train(recipe)


def test_weights_trained_on_generated_scenes_say_so_in_their_contract(tiny_recipe):
    from streamdeq.models.pretrained import GENERATED_SCENES
    from streamdeq.train.tasks import export_info

    recipe = tiny_recipe(data={"dataset": "synthetic"})
    info = export_info(recipe, get_task("segmentation").build_model(recipe.model))
    assert info.trained_on == GENERATED_SCENES and info.generated_only
    assert len(info.class_names) == 19 and info.mean == recipe.data.mean
