"""Deprecated: renderers belong to their task (:mod:`streamdeq.tasks`): this path works for one
more release."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ._deprecated import warn_moved
from .tasks import TASKS, FrameRenderer, RendererFactory, Task, register_task, renderer_for
from .tasks.segmentation.render import (
    LEGEND_MIN_SHARE,
    SegmentationRenderer,
    segmentation_labels,
)

warn_moved("streamdeq.render", "streamdeq.tasks")


def list_renderers() -> list[str]:
    """The ``--task`` words of the tasks that can draw their outputs."""
    return sorted(task.short_name for _, task in TASKS.items() if task.renderer is not None)


def register_renderer(
    task: str,
    factory: RendererFactory,
    *,
    model_tasks: Sequence[str],
    description: str = "",
    overwrite: bool = False,
) -> Task:
    """The old registration call: gives the model task ``model_tasks[0]`` this renderer under
    the ``--task`` word ``task`` (prefer registering a :class:`~streamdeq.tasks.Task`)."""
    name = model_tasks[0]
    existing = TASKS.get(name) if name in TASKS else None
    if existing is None:
        entry = Task(name=name, short_name=task, description=description, renderer=factory)
        return register_task(entry, overwrite=overwrite)
    entry = dataclasses.replace(existing, short_name=task, renderer=factory)
    return register_task(entry, overwrite=True)


__all__ = [
    "LEGEND_MIN_SHARE",
    "FrameRenderer",
    "SegmentationRenderer",
    "list_renderers",
    "register_renderer",
    "renderer_for",
    "segmentation_labels",
]
