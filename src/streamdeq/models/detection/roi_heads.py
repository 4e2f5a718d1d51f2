"""The Faster R-CNN box head: pool each proposal from its pyramid level, two fully connected
layers, class scores and class-wise box deltas; its losses on sampled proposals; and the
post-processing into detections (score threshold, per-class NMS, top detections per image)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...ops import BoxCoder, batched_nms, clip_boxes, remove_small_boxes, roi_align
from .matching import match_boxes, sample_balanced
from .rpn import SMOOTH_L1_BETA

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import DetectorConfig

#: Detections thinner than this (pixels) are dropped.
MIN_DETECTION_SIZE = 1e-2

Detections = list[dict[str, Tensor]]


def assign_levels(
    boxes: Tensor, first_level: int, last_level: int, scale: float, level: int
) -> Tensor:
    """(R,) pyramid level index (0 = ``first_level``) of each (R, 4) box by FPN Eq. 1:
    floor(level + log2(sqrt(area) / scale)), clamped to [first_level, last_level]."""
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    target = torch.floor(level + torch.log2(area.sqrt() / scale + 1e-6))
    return (target.clamp(first_level, last_level) - first_level).long()


class BoxHead(nn.Module):
    """Pooled (R, C, S, S) features -> (R, K + 1) class logits and (R, 4 (K + 1)) deltas."""

    def __init__(self, in_features: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, width)
        self.fc7 = nn.Linear(width, width)
        self.cls_score = nn.Linear(width, num_classes + 1)
        self.bbox_pred = nn.Linear(width, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        hidden = F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(hidden), self.bbox_pred(hidden)


class RoIHeads(nn.Module):
    """Multi-level RoIAlign + :class:`BoxHead` + losses + post-processing
    (:class:`~.config.RoIHeadSettings`). Pools from the backbone's levels, not from P6."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        s = config.roi
        self.settings = s
        self.strides = config.strides[:-1]
        self.coder = BoxCoder(weights=s.box_weights)
        self.box_head = BoxHead(
            config.fpn_channels * s.output_size**2, s.representation_size, config.num_classes
        )
        self.register_buffer(
            "class_ids", torch.tensor(config.class_ids, dtype=torch.long), persistent=False
        )

    def pool(self, features: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
        """(R, C, S, S) features of the boxes (all images, in order) from their levels."""
        s = self.settings
        rois = torch.cat(
            [torch.cat([b.new_full((b.shape[0], 1), i), b], 1) for i, b in enumerate(boxes)]
        )
        first = int(math.log2(self.strides[0]))
        levels = assign_levels(
            rois[:, 1:], first, first + len(self.strides) - 1, s.canonical_scale, s.canonical_level
        )
        pooled = rois.new_zeros(rois.shape[0], features[0].shape[1], s.output_size, s.output_size)
        for level, stride in enumerate(self.strides):
            rows = torch.nonzero(levels == level).flatten()
            if rows.numel():
                pooled[rows] = roi_align(
                    features[level],
                    rois[rows],
                    s.output_size,
                    1.0 / stride,
                    s.sampling_ratio,
                    aligned=True,
                )
        return pooled

    def forward(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Tensor],
        image_size: tuple[int, int],
        targets: Sequence[dict[str, Tensor]] | None = None,
    ) -> tuple[Detections, dict[str, Tensor]]:
        """Detections (eval: one dict of boxes / scores / labels per image) or, with targets,
        the losses ``loss_classifier`` and ``loss_box_reg`` (and no detections)."""
        if targets is not None:
            return [], self._losses(features, proposals, targets)
        class_logits, box_deltas = self.box_head(self.pool(features, proposals))
        return self._detections(class_logits, box_deltas, proposals, image_size), {}

    def class_indices(self, labels: Tensor) -> Tensor:
        """(N,) contiguous indices 1..K of dataset class ids (0 for ids the detector lacks)."""
        hits = labels[:, None] == self.class_ids[None, :]
        return torch.where(hits.any(1), hits.float().argmax(1) + 1, 0)

    def _losses(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Tensor],
        targets: Sequence[dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        s = self.settings
        sampled_boxes, sampled_classes, sampled_targets = [], [], []
        for props, target in zip(proposals, targets, strict=True):
            gt = target["boxes"].to(props.dtype)
            classes = self.class_indices(target["labels"])
            # the ground truth joins the proposals, so every object has a perfect candidate
            candidates = torch.cat([props, gt])
            assigned = match_boxes(gt, candidates, s.fg_iou, s.bg_iou, keep_best=False)
            positive, negative = sample_balanced(assigned, s.batch_per_image, s.positive_fraction)
            chosen = torch.cat([positive, negative])
            matched = assigned[chosen].clamp(min=0)
            box_class = torch.zeros_like(chosen)
            if gt.shape[0]:
                box_class[: positive.numel()] = classes[matched[: positive.numel()]]
                reg = self.coder.encode(gt[matched], candidates[chosen])
            else:
                reg = candidates.new_zeros(chosen.numel(), 4)
            sampled_boxes.append(candidates[chosen])
            sampled_classes.append(box_class)
            sampled_targets.append(reg)
        class_logits, box_deltas = self.box_head(self.pool(features, sampled_boxes))
        classes = torch.cat(sampled_classes)
        reg_targets = torch.cat(sampled_targets)
        loss_cls = F.cross_entropy(class_logits, classes)
        foreground = torch.nonzero(classes > 0).flatten()
        deltas = box_deltas.view(box_deltas.shape[0], -1, 4)[foreground, classes[foreground]]
        loss_box = F.smooth_l1_loss(
            deltas, reg_targets[foreground], beta=SMOOTH_L1_BETA, reduction="sum"
        )
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box / max(classes.numel(), 1)}

    def _detections(
        self,
        class_logits: Tensor,
        box_deltas: Tensor,
        proposals: Sequence[Tensor],
        image_size: tuple[int, int],
    ) -> Detections:
        s = self.settings
        num_classes = class_logits.shape[1] - 1
        scores_all = F.softmax(class_logits, dim=1)
        boxes_all = (
            self.coder.decode(box_deltas, torch.cat(list(proposals)))
            if len(proposals)
            else box_deltas
        )
        results = []
        for scores, boxes in zip(
            scores_all.split([p.shape[0] for p in proposals]),
            boxes_all.split([p.shape[0] for p in proposals]),
            strict=True,
        ):
            boxes = clip_boxes(boxes.reshape(-1, 4), image_size).view(-1, num_classes + 1, 4)[:, 1:]
            class_index = torch.arange(1, num_classes + 1, device=scores.device).expand(
                scores.shape[0], -1
            )
            boxes, scores, class_index = (
                boxes.reshape(-1, 4),
                scores[:, 1:].reshape(-1),
                class_index.reshape(-1),
            )
            keep = torch.nonzero(scores > s.score_thresh).flatten()
            keep = keep[remove_small_boxes(boxes[keep], MIN_DETECTION_SIZE)]
            keep = keep[batched_nms(boxes[keep], scores[keep], class_index[keep], s.nms_iou)]
            keep = keep[: s.detections_per_image]
            results.append(
                {
                    "boxes": boxes[keep],
                    "scores": scores[keep],
                    "labels": self.class_ids[class_index[keep] - 1],
                }
            )
        return results
