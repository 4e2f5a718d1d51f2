"""The task registry: name -> :class:`~.base.Task`, filled by the task packages when the
plugins are loaded (see :mod:`streamdeq.plugins`)."""

from __future__ import annotations

from typing import Any

from ..errors import SettingsError
from ..plugins import load_plugins
from ..registry import Registry
from ..train.tasks import register_task as register_training_task
from .base import FrameRenderer, Task

TASKS: Registry[Task] = Registry("task", error=SettingsError, loader=load_plugins)


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Make ``task`` known to ``streamdeq run --task``, the experiments and (with its
    ``training``) the trainer's recipes. Call it from the task package's ``__init__``."""
    TASKS.register(task.name, task, overwrite=overwrite)
    if task.training is not None:
        register_training_task(task.name, task.training, overwrite=overwrite)
    return task


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> Task:
    """The task called ``name`` or whose ``short_name`` is ``name``."""
    for task_name, task in TASKS.items():
        if name in (task_name, task.short_name):
            return task
    words = [word for _, t in TASKS.items() for word in (t.short_name, t.name)]
    raise SettingsError(TASKS.unknown_message(name, known=words))


def task_words() -> list[str]:
    """Every word ``--task`` accepts (short names first)."""
    tasks = [t for _, t in TASKS.items()]
    return [t.short_name for t in tasks] + [t.name for t in tasks]


def model_task_name(model: Any) -> str | None:
    """The task a model declares in ``config.task`` (None when it declares none)."""
    value = getattr(getattr(model, "config", None), "task", None)
    return value if isinstance(value, str) else None


def task_of(model: Any) -> Task:
    """The registered task of ``model``.

    Raises:
        SettingsError: the model declares no task, or one nothing is registered for.
    """
    name = model_task_name(model)
    if name is None:
        raise SettingsError(
            f"{type(model).__name__} declares no task (config.task); registered tasks: "
            f"{', '.join(list_tasks())}"
        )
    if name not in TASKS:
        raise SettingsError(
            f"nothing is registered for {name} models; registered tasks: {', '.join(list_tasks())}"
        )
    return TASKS.get(name)


def renderer_for(model: Any, task: str | None = None) -> tuple[str, FrameRenderer]:
    """The ``--task`` word and a fresh renderer for ``model``'s outputs.

    ``task`` None picks the model's own task.

    Raises:
        SettingsError: an unknown task, or one whose renderer cannot draw this model's output.
    """
    own = model_task_name(model)
    chosen = task_of(model) if task is None else get_task(task)
    if chosen.name != own:
        raise SettingsError(
            f"task {task!r} draws {chosen.name} outputs but the model is a {own} model; "
            "pick a matching model or --task"
        )
    if chosen.renderer is None:
        raise SettingsError(
            f"nothing can draw the output of a {own} model yet; renderers exist for "
            f"{', '.join(n for n, t in TASKS.items() if t.renderer is not None)} models"
        )
    return chosen.short_name, chosen.build_renderer(model)
