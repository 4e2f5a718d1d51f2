"""Drawing a model's output on its frame, per task: a small registry of renderers.

``streamdeq run`` does not know what a task's output looks like: it asks the renderer registered
for the task to draw the output onto the frame and to add its own stats columns. A new task (e.g.
detection) plugs in with one call::

    register_renderer("detect", BoxRenderer, model_tasks=("detection",), description="boxes")

A renderer is built once per run (it may keep state from frame to frame, e.g. the previous label
map) from the model, so it can read the model's class count.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, draw_legend, overlay_segmentation
from .errors import SettingsError

#: Classes covering less of the frame than this share are left out of the legend.
LEGEND_MIN_SHARE = 0.005


class FrameRenderer(Protocol):
    """Draws one task's output; built per run, called once per frame in order."""

    #: the stats columns :meth:`render` returns, in order (added after the stream's own)
    columns: tuple[str, ...]

    def render(self, frame: np.ndarray, output: Tensor) -> tuple[np.ndarray, dict[str, Any]]:
        """(H, W, 3) uint8 RGB frame and the model's output for it (without the batch
        dimension) -> the drawn frame (same size) and the frame's stats values."""
        ...


RendererFactory = Callable[[Any], FrameRenderer]
"""Builds a renderer for a model (read its ``config``: task, number of classes)."""


@dataclass(frozen=True)
class RendererEntry:
    """A registered renderer: the task name users pick (``--task``), what builds it, and the
    model tasks (``model.config.task``) whose outputs it can draw."""

    task: str
    factory: RendererFactory
    model_tasks: tuple[str, ...]
    description: str = ""


_RENDERERS: dict[str, RendererEntry] = {}

#: Modules that register the renderers of other tasks when imported; loaded on the first lookup,
#: so that importing this module does not import every task's code.
BUILTIN_RENDERER_MODULES = ("streamdeq.render_detection",)


def register_renderer(
    task: str,
    factory: RendererFactory,
    *,
    model_tasks: Sequence[str],
    description: str = "",
    overwrite: bool = False,
) -> RendererEntry:
    """Make ``task`` available to ``streamdeq run --task``."""
    if task in _RENDERERS and not overwrite:
        raise SettingsError(f"a renderer for task {task!r} is already registered")
    entry = RendererEntry(task, factory, tuple(model_tasks), description)
    _RENDERERS[task] = entry
    return entry


def list_renderers() -> list[str]:
    _load_builtins()
    return sorted(_RENDERERS)


def _load_builtins() -> None:
    for name in BUILTIN_RENDERER_MODULES:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def renderer_for(model: Any, task: str | None = None) -> tuple[str, FrameRenderer]:
    """The task name and a fresh renderer for ``model``'s outputs.

    ``task`` None picks the renderer registered for the model's own task.

    Raises:
        SettingsError: an unknown task, or one whose renderer cannot draw this model's output.
    """
    _load_builtins()
    model_task = getattr(getattr(model, "config", None), "task", None)
    if task is None:
        matches = [e.task for e in _RENDERERS.values() if model_task in e.model_tasks]
        if not matches:
            raise SettingsError(
                f"nothing can draw the output of a {model_task} model yet; renderers exist for "
                f"{_known_model_tasks()} models"
            )
        task = matches[0]
    entry = _RENDERERS.get(task)
    if entry is None:
        raise SettingsError(f"unknown task {task!r}; available: {', '.join(list_renderers())}")
    if model_task not in entry.model_tasks:
        raise SettingsError(
            f"task {task!r} draws {'/'.join(entry.model_tasks)} outputs but the model is a "
            f"{model_task} model; pick a matching model or --task"
        )
    return task, entry.factory(model)


def _known_model_tasks() -> str:
    tasks = sorted({t for entry in _RENDERERS.values() for t in entry.model_tasks})
    return ", ".join(tasks) or "no"


# ----------------------------------------------------------------------------- segmentation


class SegmentationRenderer:
    """Per-pixel classes over the frame in the Cityscapes palette, with a legend of the classes
    in view.

    The logits (classes, h, w) arrive at the model's output resolution (1/4 of the frame for
    MDEQ); they are upsampled bilinearly to the frame before the argmax, as the official
    evaluation does, so class borders are smooth rather than 4-pixel blocks.

    Stats columns: ``classes_in_view`` (classes with at least one pixel) and ``label_change``
    (share of pixels whose class differs from the previous frame's: flicker, the temporal
    consistency a warm-started stream should improve; NaN on the first frame and after a size
    change).
    """

    columns = ("classes_in_view", "label_change")

    def __init__(self, model: Any, alpha: float = 0.5, legend: bool = True) -> None:
        num_classes = int(model.config.num_classes)
        self.class_names = _class_names(num_classes)
        self.palette = _palette(num_classes)
        self.alpha = alpha
        self.legend = legend
        self._previous: np.ndarray | None = None

    def render(self, frame: np.ndarray, output: Tensor) -> tuple[np.ndarray, dict[str, Any]]:
        labels = segmentation_labels(output, frame.shape[:2])
        drawn = overlay_segmentation(frame, labels, self.alpha, self.palette)
        counts = np.bincount(labels.ravel(), minlength=len(self.class_names))
        if self.legend:
            in_view = np.flatnonzero(counts >= LEGEND_MIN_SHARE * labels.size)
            drawn = draw_legend(drawn, in_view.tolist(), self.class_names, self.palette)
        change = float("nan")
        if self._previous is not None and self._previous.shape == labels.shape:
            change = float(np.count_nonzero(self._previous != labels)) / labels.size
        self._previous = labels
        return drawn, {"classes_in_view": int(np.count_nonzero(counts)), "label_change": change}


def segmentation_labels(logits: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(classes, h, w) logits -> (H, W) class map at ``size`` = (H, W), upsampled bilinearly;
    uint8 (int32 for more than 256 classes)."""
    if logits.dim() != 3:
        raise ValueError(f"expected (classes, h, w) logits, got {tuple(logits.shape)}")
    with torch.no_grad():
        scores = logits[None].float()
        if tuple(scores.shape[-2:]) != tuple(size):
            scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        labels = scores[0].argmax(dim=0)
    dtype = torch.uint8 if logits.shape[0] <= 256 else torch.int32
    return labels.to(device="cpu", dtype=dtype).numpy()


def _class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes == len(CITYSCAPES_CLASSES):
        return CITYSCAPES_CLASSES
    return tuple(f"class {k}" for k in range(num_classes))


def _palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Cityscapes colours, then seeded random ones for models with more classes."""
    extra = max(0, num_classes - len(CITYSCAPES_PALETTE))
    rng = np.random.default_rng(0)
    more = [tuple(int(v) for v in rng.integers(40, 256, size=3)) for _ in range(extra)]
    return (*CITYSCAPES_PALETTE, *more)[: max(num_classes, 1)]


register_renderer(
    "segment",
    SegmentationRenderer,
    model_tasks=("segmentation",),
    description="class colours over the frame (Cityscapes palette) with a legend",
)

# other tasks register their renderers here (after the registry above exists)
from . import render_detection  # noqa: E402, F401
