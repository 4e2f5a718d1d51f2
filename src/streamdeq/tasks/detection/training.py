"""The detection task: Faster R-CNN on an MDEQ backbone, trained by the same loop as
segmentation (pretraining, implicit differentiation, Jacobian regulariser, DDP).

The trainer finds z; the task turns (z, the batch's boxes) into the four Faster R-CNN losses
with :meth:`MDEQDetector.losses`, and validates with mAP@50 from
:class:`streamdeq.eval.detection.DetectionAccumulator` on fully solved states.

Dataset items: ``image`` (3, H, W) uint8, ``boxes`` (N, 4) x1 y1 x2 y2 pixels, and ``classes``
(or ``labels``) (N,) class ids in the detector's label space (the generated scenes: Cityscapes
train ids). Augmentation: horizontal flip (boxes mirrored) and colour jitter; rescaling and
cropping are segmentation-only and rejected here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...train.augment import _color_jitter, _uniform, to_unit_float
from ...train.recipe import Recipe, RecipeError
from ...train.tasks import Batch, Task


class DetectionTask(Task):
    """Boxes and classes per image; see the module docstring."""

    name = "detection"

    model_needs = "a detector (e.g. mdeq-det-tiny-synthetic)"

    def prepare(self, item: dict[str, Tensor], recipe: Recipe, rng: torch.Generator | None) -> dict:
        image = to_unit_float(item["image"])
        boxes = torch.as_tensor(item["boxes"], dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(item["classes"] if "classes" in item else item["labels"]).long()
        if rng is not None:
            augment = recipe.data.augment
            if augment.crop is not None or tuple(augment.scale) != (1.0, 1.0):
                raise RecipeError(
                    "data.augment.scale and crop are not supported for detection; use flip and "
                    "color_jitter"
                )
            if augment.flip and _uniform(rng) < 0.5:
                width = image.shape[-1]
                image = image.flip(-1)
                boxes = torch.stack(
                    [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1
                )
            if augment.color_jitter > 0:
                image = _color_jitter(image, augment.color_jitter, rng)
        return {"image": image.contiguous(), "target": {"boxes": boxes, "labels": labels}}

    def collate(self, samples: Sequence[dict]) -> Batch:
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) > 1:
            raise RecipeError(f"samples of different sizes {sorted(shapes)} cannot form a batch")
        return {
            "image": torch.stack([s["image"] for s in samples]),
            "targets": [s["target"] for s in samples],
        }

    def output(self, model: nn.Module, z: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        device = z[0].device
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        return model.losses(z, targets)

    def loss(self, output: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, float]]:
        total = sum(output.values())
        return total, {name: value.item() for name, value in output.items()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch], iters: int) -> dict[str, Any]:
        from ...eval.detection import DetectionAccumulator

        accumulator = DetectionAccumulator()
        residuals = []
        for batch in batches:
            z, result = model.solve(batch["image"], max_iter=iters)
            detections = [{k: v.cpu() for k, v in d.items()} for d in model.head(z)]
            accumulator.update(detections, batch["targets"])
            residuals.append(result.rel_trace[:, -1])
        accumulator.all_gather()
        metrics = accumulator.compute()
        values: dict[str, Any] = {"map50": metrics.map50, "map": metrics.map}
        if residuals:
            values["val_rel_residual"] = float(torch.cat(residuals).mean())
        return values
