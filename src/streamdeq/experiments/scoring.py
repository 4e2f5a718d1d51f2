"""How the accuracy experiments (Table 1, Fig. 5 and their detection twins) score a model on any
task: the model's task supplies the metric, one fresh metric per scheme, fed each scored frame's
output and the clip's annotation of that frame. Nothing here knows what an output is.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from ..tasks import Metric, Task, task_of
from .clips import Clip, check_clip_task, check_clips


def scoring_task(model: Any, clips: Sequence[Clip]) -> Task:
    """The model's task, after checking that the clips are Clips annotated for it.

    Raises:
        SettingsError: no clips, the model declares no registered task, or clips annotated
            for another task.
    """
    check_clips(clips)
    task = task_of(model)
    check_clip_task(clips, task.name, task.target_key)
    return task


def fresh_metrics(task: Task, model: Any, keys: Iterable[Hashable]) -> dict[Hashable, Metric]:
    """An empty metric per key (the task's error if it has no metric); every key is created up front so that all ranks combine the
    same metrics in the same order."""
    return {key: task.build_metric(model) for key in keys}


def combine(metrics: Mapping[Hashable, Metric]) -> dict[Hashable, dict[str, float | int]]:
    """Each metric combined over the ranks (in key order, the same on every rank) and
    computed: key -> the metric's columns."""
    for metric in metrics.values():
        metric.all_reduce()
    return {key: metric.compute() for key, metric in metrics.items()}


def f_thres(model: Any, options: Mapping[str, Any]) -> int | None:
    """N, the baseline's iterations: the run's setting, else the model's own."""
    return options.get("f_thres") or getattr(getattr(model, "config", None), "f_thres", None)
