"""What the trainer asks of a task: its model, how a batch is formed, its loss and validation.

The trainer owns everything a DEQ needs (pretraining vs. equilibrium, solvers, the Jacobian
regulariser, optimisation, processes); a task only knows its data and its outputs. Detection
registers its own :class:`Task` with :func:`register_task` and trains with the same loop.

A task's model must be streamable (``inject``, ``init_state``, ``f``, ``head``, ``config`` with
the MDEQ fields ``f_thres``, ``b_thres``, ``num_layers``, ``pretrain_steps``, ``dropout``,
``num_channels``, ``num_blocks``): the trainer solves for z itself and hands z to the task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.labels import IGNORE_INDEX
from .augment import augment_segmentation, to_unit_float
from .recipe import ModelSection, Recipe, RecipeError

Batch = dict[str, Any]


class Task:
    """Base class of a trainable task. Subclasses set ``name`` and implement the methods that
    raise here."""

    name = "task"

    def build_model(self, section: ModelSection) -> nn.Module:
        """The (randomly initialised) model the recipe's ``model`` section describes."""
        raise NotImplementedError

    def prepare(self, item: dict[str, Tensor], recipe: Recipe, rng: torch.Generator | None) -> dict:
        """One dataset item as a training (``rng`` given: augment) or validation sample, with
        ``image`` (3, H, W) float in [0, 1]."""
        raise NotImplementedError

    def collate(self, samples: Sequence[dict]) -> Batch:
        """Samples -> a batch with ``image`` (B, 3, H, W) (normalised by the trainer)."""
        raise NotImplementedError

    def output(self, model: nn.Module, z: Sequence[Tensor], batch: Batch) -> Any:
        """The task output from the equilibrium state z; default ``model.head(z)``."""
        return model.head(z)

    def loss(self, output: Any, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """(scalar loss, named parts to log). It must be a mean over the batch's samples of a
        per-sample loss, so that processes averaging their gradients train like one process."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, batches: Iterable[Batch], iters: int) -> dict[str, Any]:
        """Validation metrics of an eval-mode model over this process's batches; the method must
        combine the processes' results itself (e.g. summing confusion matrices)."""
        raise NotImplementedError

    def export(self, model: nn.Module, path: str) -> None:
        """Write the trained weights (default: streamdeq safetensors with the config)."""
        from ..models import save_safetensors

        save_safetensors(model, path)


_TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task], *, overwrite: bool = False) -> None:
    """Make ``train.task: NAME`` usable in recipes."""
    if name in _TASKS and not overwrite:
        raise RecipeError(f"a task named {name!r} is already registered")
    _TASKS[name] = factory


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]()
    except KeyError:
        raise RecipeError(
            f"unknown task {name!r} in train.task; known: {', '.join(list_tasks())}"
        ) from None


def build_mdeq(section: ModelSection, *, task: str, needs: str) -> nn.Module:
    """The recipe's model from a registered name and overrides, checked to be a ``task`` model:
    a mismatch fails here, in one line saying what the task ``needs``, not as a shape error in
    the first loss."""
    from ..models import create_model

    model = create_model(section.name, **dict(section.overrides))
    if model.config.task != task:
        raise RecipeError(
            f"model {section.name} is a {model.config.task} model; the {task} task needs {needs}"
        )
    return model


class SegmentationTask(Task):
    """Per-pixel classification into ``config.num_classes`` classes, IGNORE_INDEX ignored.

    Loss: cross-entropy over the labelled pixels of each sample, averaged over samples (logits
    (B, K, H/4, W/4) bilinearly upsampled to the label size first, as the official trainer).
    Validation: mIoU from a confusion matrix of the fully solved model, and the relative
    residual ||f(z) - z|| / ||f(z)|| of the returned state.
    """

    name = "segmentation"

    def build_model(self, section: ModelSection) -> nn.Module:
        return build_mdeq(
            section, task=self.name, needs="task: segmentation (set it in model.overrides)"
        )

    def prepare(self, item: dict[str, Tensor], recipe: Recipe, rng: torch.Generator | None) -> dict:
        image = to_unit_float(item["image"])
        label = item["label"].long()
        if rng is not None:
            image, label = augment_segmentation(image, label, recipe.data.augment, rng)
        return {"image": image, "label": label}

    def collate(self, samples: Sequence[dict]) -> Batch:
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) > 1:
            raise RecipeError(
                f"samples of different sizes {sorted(shapes)} cannot form a batch; set "
                "data.augment.crop to a fixed size"
            )
        return {
            "image": torch.stack([s["image"] for s in samples]),
            "label": torch.stack([s["label"] for s in samples]),
        }

    def loss(self, output: Tensor, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        label = batch["label"]
        logits = _resize_logits(output, label.shape[-2:])
        pixel_loss = F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="none")
        labelled = (label != IGNORE_INDEX).sum(dim=(1, 2)).clamp(min=1)
        loss = (pixel_loss.sum(dim=(1, 2)) / labelled).mean()
        return loss, {"ce": loss.item()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch], iters: int) -> dict[str, Any]:
        from ..eval.segmentation import ConfusionMatrix

        matrix = ConfusionMatrix(num_classes=model.config.num_classes, ignore_index=IGNORE_INDEX)
        residuals = []
        for batch in batches:
            z, _ = model.solve(batch["image"], max_iter=iters)
            logits = _resize_logits(model.head(z), batch["label"].shape[-2:])
            matrix.update(logits.argmax(1).cpu(), batch["label"].cpu())
            residuals.append(relative_residual(model, model.inject(batch["image"]), z).cpu())
        matrix.all_reduce()
        metrics: dict[str, Any] = {
            "miou": float(matrix.miou()),
            "pixel_acc": float(matrix.pixel_accuracy()),
        }
        if residuals:
            metrics["val_rel_residual"] = float(torch.cat(residuals).mean())
        return metrics


def relative_residual(model: nn.Module, injection: Sequence, z: Sequence[Tensor]) -> Tensor:
    """(B,) ||f(z) - z|| / ||f(z)|| of the state a solve returned, each sample over all its
    branches (the solver's trace stops at the last iterate it evaluated f at, which in
    Broyden's efficient mode is the one before the returned state)."""
    fz = model.f(list(z), injection)
    diff = sum((a - b).flatten(1).pow(2).sum(1) for a, b in zip(fz, z, strict=True))
    norm = sum(a.flatten(1).pow(2).sum(1) for a in fz)
    return diff.sqrt() / (norm.sqrt() + 1e-8)


def _resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


register_task("segmentation", SegmentationTask)

__all__ = [
    "Batch",
    "SegmentationTask",
    "Task",
    "get_task",
    "list_tasks",
    "register_task",
]
