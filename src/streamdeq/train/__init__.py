"""Training: ``train(recipe)`` / ``streamdeq train RECIPE.yaml``, one process or many under
``torchrun``, for any registered task.

>>> from streamdeq.train import load_recipe, train
>>> result = train(load_recipe("configs/seg_mdeq_tiny_synthetic.yaml"), out_dir="runs/tiny")

- :mod:`.recipe`: the yaml recipe as frozen dataclasses (unknown keys rejected);
- :mod:`.loop`: the loop (pretraining, equilibrium, Jacobian regulariser, checkpoints, logs);
- :mod:`.tasks`: the task interface (each task package registers its own, see streamdeq.tasks);
- :mod:`.distributed`: process group, gradient averaging, global-batch BatchNorm.
"""

from __future__ import annotations

from .._deprecated import moved_attributes
from .datasets import CachedDataset, list_datasets, register_dataset
from .forward import DEQPlan, deq_forward, per_sample_jacobian_penalty
from .loop import TrainingError, TrainResult, train
from .recipe import Recipe, RecipeError, load_recipe
from .tasks import Task, get_task, list_tasks, register_task

#: moved to the task packages; importable from here for one more release
__getattr__ = moved_attributes(
    __name__,
    {
        "SegmentationTask": "streamdeq.tasks.segmentation.training:SegmentationTask",
        "DetectionTask": "streamdeq.tasks.detection.training:DetectionTask",
    },
)

__all__ = [
    "CachedDataset",
    "DEQPlan",
    "Recipe",
    "RecipeError",
    "Task",
    "TrainResult",
    "TrainingError",
    "deq_forward",
    "get_task",
    "list_datasets",
    "list_tasks",
    "load_recipe",
    "per_sample_jacobian_penalty",
    "register_dataset",
    "register_task",
    "train",
]
