"""The segmentation task's side of the trainer: per-pixel cross-entropy, mIoU validation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.labels import IGNORE_INDEX
from ...eval.segmentation import ConfusionMatrix
from ...train.augment import augment_segmentation, to_unit_float
from ...train.recipe import Recipe, RecipeError
from ...train.tasks import Batch, Task, relative_residual


class SegmentationTask(Task):
    """Per-pixel classification into ``config.num_classes`` classes, IGNORE_INDEX ignored.

    Loss: cross-entropy over the labelled pixels of each sample, averaged over samples (logits
    (B, K, H/4, W/4) bilinearly upsampled to the label size first, as the official trainer).
    Validation: mIoU from a confusion matrix of the fully solved model, and the relative
    residual ||f(z) - z|| / ||f(z)|| of the returned state.
    """

    name = "segmentation"

    model_needs = "task: segmentation (set it in model.overrides)"

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


def _resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
