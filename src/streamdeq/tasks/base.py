"""What a task is: everything that differs between segmentation, detection and any other task.

The library's shared layers (solvers, the stream engine, video I/O, the trainer's loop, the
experiments' schemes) never look at what a model outputs. Where output matters, they ask the
model's task, found by ``model.config.task`` in the task registry:

- **renderer**: draws one frame's output over the frame for ``streamdeq run`` and the demo, and
  adds its own stats columns;
- **metric**: scores outputs against a clip's annotations, for the paper's experiments (Table 1,
  Fig. 5) on any task;
- **predictions**: stores a run's per-frame outputs (``streamdeq run --predictions``) and reads
  them back for ``streamdeq score`` (:mod:`streamdeq.tasks.predictions`);
- **training**: the task's side of the trainer (batches, loss, validation), registered in
  :mod:`streamdeq.train` under the task's name;
- **models**: the task package registers its model families in the model zoo when imported.

How an output is cropped back to the frame after padding, and scaled back to the frame's pixels
after a resize, is the model's business (``model.crop_output``, ``model.rescale_output``; dense
outputs get the engine's default crop and stay at model resolution for the renderer to upsample),
since only the model knows its output's geometry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class FrameRenderer(Protocol):
    """Draws one task's output; built per run, called once per frame in order."""

    #: the stats columns :meth:`render` returns, in order (added after the stream's own)
    columns: tuple[str, ...]

    def render(self, frame: np.ndarray, output: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """(H, W, 3) uint8 RGB frame and the model's output for it (without the batch
        dimension) -> the drawn frame (same size) and the frame's stats values."""
        ...


class Metric(Protocol):
    """Accumulates a task's score over frames, then reports it.

    ``update`` takes one frame's output (as :class:`~streamdeq.stream.StreamDEQ` returns it,
    without the batch dimension) and the clip's annotation of that frame (whatever the task's
    clips carry: a label map, a dict of boxes, ...). Under ``torchrun`` each process scores its
    own clips and ``all_reduce`` combines them before ``compute``.
    """

    def update(self, output: Any, target: Any) -> None: ...

    def all_reduce(self) -> None: ...

    def compute(self) -> dict[str, float | int]: ...


RendererFactory = Callable[[Any], FrameRenderer]
"""Builds a renderer for a model (it may read the model's ``config``: classes, names)."""

MetricFactory = Callable[[Any], Metric]
"""Builds an empty metric for a model (e.g. a confusion matrix of its class count)."""


@dataclass(frozen=True)
class Task:
    """A registered task.

    Attributes:
        name: the task's name, as models declare it in ``config.task`` and recipes in
            ``train.task`` ("segmentation", "detection").
        short_name: the word ``streamdeq run --task`` takes ("segment", "detect"); the full
            name is accepted too.
        description: one line for help texts.
        renderer: builds the frame renderer, or None when outputs cannot be drawn.
        metric: builds the experiments' metric, or None when the task has none.
        training: builds the trainer's side of the task (a :class:`streamdeq.train.Task`),
            registered for recipes' ``train.task: NAME``; None when it cannot be trained.
        headline: the metric's main column (plotted against speed: "miou", "map50").
        headline_label: how plots name it ("mIoU", "mAP@50").
        experiments: experiment names that only make sense for this task, with what they run
            (the generic ones, ``table1`` and ``fig5``, work on every task with a metric).
        target_key: what a clip's annotations are called in this task's error messages.
        predictions: how a run's outputs are written and read back
            (:class:`~streamdeq.tasks.predictions.PredictionsFormat`), or None.
    """

    name: str
    short_name: str
    description: str = ""
    renderer: RendererFactory | None = None
    metric: MetricFactory | None = None
    training: Callable[[], Any] | None = None
    headline: str = ""
    headline_label: str = ""
    experiments: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    target_key: str = "annotations"
    predictions: Any = None  # a PredictionsFormat; Any keeps this module free of its imports

    def build_renderer(self, model: Any) -> FrameRenderer:
        if self.renderer is None:
            from ..errors import SettingsError

            raise SettingsError(
                f"the {self.name} task has no renderer: its outputs cannot be drawn"
            )
        return self.renderer(model)

    def build_metric(self, model: Any) -> Metric:
        if self.metric is None:
            from ..errors import SettingsError

            raise SettingsError(f"the {self.name} task has no metric to score experiments with")
        return self.metric(model)
