"""Tasks: what differs between segmentation, detection and any task a user adds.

Each task is one package (``streamdeq.tasks.segmentation``, ``streamdeq.tasks.detection``) that
registers, when imported, its :class:`Task` (renderer, metric), its training task and its model
families. A task outside streamdeq is a package of the same shape, found through the
``streamdeq.tasks`` entry-point group (see :mod:`streamdeq.plugins`).
"""

from __future__ import annotations

from .base import FrameRenderer, Metric, MetricFactory, RendererFactory, Task
from .registry import (
    TASKS,
    get_task,
    list_tasks,
    model_task_name,
    register_task,
    renderer_for,
    task_of,
    task_words,
)

__all__ = [
    "TASKS",
    "FrameRenderer",
    "Metric",
    "MetricFactory",
    "RendererFactory",
    "Task",
    "get_task",
    "list_tasks",
    "model_task_name",
    "register_task",
    "renderer_for",
    "task_of",
    "task_words",
]
