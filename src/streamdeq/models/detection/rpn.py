"""Region proposal network: objectness and box deltas for every anchor of every pyramid level,
their losses on sampled anchors, and the proposals (top-k per level, decode, clip, NMS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...ops import BoxCoder, base_anchors, batched_nms, clip_boxes, grid_anchors, remove_small_boxes
from .matching import match_boxes, sample_balanced

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import DetectorConfig

#: Smooth-L1 transition point of the box losses (the Faster R-CNN value).
SMOOTH_L1_BETA = 1.0 / 9.0


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by all levels, then 1x1 convs to A objectness logits and 4A deltas."""

    def __init__(self, channels: int, anchors_per_pixel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, anchors_per_pixel, 1)
        self.deltas = nn.Conv2d(channels, 4 * anchors_per_pixel, 1)
        for conv in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: (B, H*W*A) objectness logits and (B, H*W*A, 4) deltas, pixel-major."""
        logits, deltas = [], []
        for level in features:
            hidden = F.relu(self.conv(level))
            bsz, _, height, width = level.shape
            logits.append(self.objectness(hidden).permute(0, 2, 3, 1).reshape(bsz, -1))
            d = self.deltas(hidden).view(bsz, -1, 4, height, width)
            deltas.append(d.permute(0, 3, 4, 1, 2).reshape(bsz, -1, 4))
        return logits, deltas


class RegionProposalNetwork(nn.Module):
    """Anchors + :class:`RPNHead` + losses + proposal filtering (the settings in
    :class:`~.config.RPNSettings`)."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.settings = config.rpn
        self.strides = config.strides
        self.coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        ratios = config.rpn.aspect_ratios
        self.head = RPNHead(config.fpn_channels, len(ratios))
        for level, size in enumerate(config.rpn.anchor_sizes):
            self.register_buffer(f"base_{level}", base_anchors([size], ratios), persistent=False)

    def anchors(self, features: Sequence[Tensor]) -> list[Tensor]:
        """(H_l * W_l * A, 4) anchors of each level, in image pixels."""
        return [
            grid_anchors(
                getattr(self, f"base_{level}").to(fmap.dtype),
                tuple(fmap.shape[-2:]),
                (stride, stride),
            )
            for level, (fmap, stride) in enumerate(zip(features, self.strides, strict=True))
        ]

    def forward(
        self,
        features: Sequence[Tensor],
        image_size: tuple[int, int],
        targets: Sequence[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals (one (P_b, 4) tensor per image, no gradient) and, with targets, the losses
        ``loss_objectness`` and ``loss_rpn_box``."""
        logits, deltas = self.head(features)
        anchors = self.anchors(features)
        proposals = self._propose(logits, deltas, anchors, image_size)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            losses = self._losses(
                torch.cat(logits, 1), torch.cat(deltas, 1), torch.cat(anchors), targets
            )
        return proposals, losses

    def _propose(
        self,
        logits: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        image_size: tuple[int, int],
    ) -> list[Tensor]:
        s = self.settings
        pre_n = s.pre_nms_top_n_train if self.training else s.pre_nms_top_n_test
        post_n = s.post_nms_top_n_train if self.training else s.post_nms_top_n_test
        boxes, scores, levels = [], [], []
        for level, (logit, delta, anchor) in enumerate(zip(logits, deltas, anchors, strict=True)):
            logit, delta = logit.detach(), delta.detach()
            k = min(pre_n, logit.shape[1])
            top_scores, top = logit.topk(k, dim=1)  # (B, k)
            chosen = delta.gather(1, top[..., None].expand(-1, -1, 4))
            decoded = self.coder.decode(chosen.reshape(-1, 4), anchor[top.reshape(-1)])
            boxes.append(decoded.view(top.shape[0], k, 4))
            scores.append(top_scores)
            levels.append(torch.full((k,), level, dtype=torch.long, device=logit.device))
        boxes_all, scores_all, levels_all = (
            torch.cat(boxes, 1),
            torch.cat(scores, 1),
            torch.cat(levels),
        )
        proposals = []
        for image_boxes, image_scores in zip(boxes_all, scores_all, strict=True):
            image_boxes = clip_boxes(image_boxes, image_size)
            keep = remove_small_boxes(image_boxes, s.min_size)
            keep = keep[
                batched_nms(image_boxes[keep], image_scores[keep], levels_all[keep], s.nms_iou)
            ]
            proposals.append(image_boxes[keep[:post_n]])
        return proposals

    def _losses(
        self, logits: Tensor, deltas: Tensor, anchors: Tensor, targets: Sequence[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        s = self.settings
        sampled_logits, sampled_labels, pos_deltas, pos_targets = [], [], [], []
        for b, target in enumerate(targets):
            gt = target["boxes"].to(anchors.dtype)
            assigned = match_boxes(gt, anchors, s.fg_iou, s.bg_iou, keep_best=True)
            positive, negative = sample_balanced(assigned, s.batch_per_image, s.positive_fraction)
            sampled_logits.append(logits[b, torch.cat([positive, negative])])
            sampled_labels.append(
                torch.cat([logits.new_ones(positive.numel()), logits.new_zeros(negative.numel())])
            )
            pos_deltas.append(deltas[b, positive])
            pos_targets.append(self.coder.encode(gt[assigned[positive]], anchors[positive]))
        sampled = torch.cat(sampled_logits)
        count = max(sampled.numel(), 1)
        objectness = F.binary_cross_entropy_with_logits(
            sampled, torch.cat(sampled_labels), reduction="sum"
        )
        box = F.smooth_l1_loss(
            torch.cat(pos_deltas), torch.cat(pos_targets), beta=SMOOTH_L1_BETA, reduction="sum"
        )
        return {"loss_objectness": objectness / count, "loss_rpn_box": box / count}
