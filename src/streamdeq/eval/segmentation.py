"""Semantic segmentation scores from a confusion matrix: per-class IoU, mIoU, pixel accuracy.

The matrix counts pixels by (true class, predicted class); every score derives from it, so
matrices from many frames, clips or processes simply add up (:meth:`ConfusionMatrix.merge`,
:meth:`ConfusionMatrix.all_reduce`) and the scores of the sum are the scores of the whole set.

mIoU follows the official Cityscapes evaluation: IoU_c = TP / (TP + FP + FN) per class, and the
mean is over the classes whose union TP + FP + FN is non-zero (the official script's nan classes
are skipped). A class that is predicted but absent from the ground truth therefore counts, with
IoU 0. Pixels whose target is ``ignore_index`` are not counted at all, whatever was predicted.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import SettingsError, StreamDEQError


class LabelRangeError(StreamDEQError, ValueError):
    """A prediction or target value outside 0..num_classes - 1 (other than the ignore index)."""


class ConfusionMatrix:
    """Accumulated (num_classes, num_classes) pixel counts, rows = target, columns = prediction.

    Args:
        num_classes: C (19 for the Cityscapes train IDs).
        ignore_index: target value that is not evaluated (255).
        device: where the counts live; all_reduce needs the device of the process group's
            backend (CUDA for nccl, CPU for gloo).
    """

    def __init__(
        self, num_classes: int = 19, ignore_index: int = 255, device: torch.device | str = "cpu"
    ) -> None:
        if num_classes < 1:
            raise SettingsError(f"num_classes must be at least 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise SettingsError(
                f"ignore_index {ignore_index} is a real class of {num_classes}; "
                "pick a value outside 0..num_classes - 1"
            )
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Count one batch: ``pred`` and ``target`` are integer tensors (or arrays) of one shape,
        any layout ((H, W), (B, H, W), ...). Returns self."""
        pred = torch.as_tensor(pred, device=self.matrix.device)
        target = torch.as_tensor(target, device=self.matrix.device)
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError(
                "pred and target must be integer class maps (take argmax of logits first)"
            )
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        c = self.num_classes
        for name, values in (("target", target), ("pred", pred)):
            if values.numel() and (values.min() < 0 or values.max() >= c):
                raise LabelRangeError(
                    f"{name} holds values outside 0..{c - 1} (min {int(values.min())}, max "
                    f"{int(values.max())}); map labels to train IDs and mark void pixels "
                    f"{self.ignore_index}"
                )
        self.matrix += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts to this one (same classes). Returns self."""
        if other.num_classes != self.num_classes:
            raise SettingsError(
                f"cannot merge a {other.num_classes}-class matrix into a "
                f"{self.num_classes}-class one"
            )
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all ranks of the default torch.distributed group, in place.

        A no-op when torch.distributed is not initialised, so the same evaluation code runs in one
        process or many. Every rank must call it. Returns self.
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix, op=torch.distributed.ReduceOp.SUM)
        return self

    def reset(self) -> None:
        self.matrix.zero_()

    def iou(self) -> torch.Tensor:
        """(C,) float64 IoU per class; nan where the class is neither present nor predicted."""
        counts = self.matrix.double()
        true_positive = counts.diagonal()
        union = counts.sum(0) + counts.sum(1) - true_positive
        return torch.where(union > 0, true_positive / union.clamp(min=1), torch.nan)

    def miou(self) -> float:
        """Mean IoU over the classes with a non-zero union; nan when nothing was counted."""
        iou = self.iou()
        valid = ~iou.isnan()
        return float(iou[valid].mean()) if valid.any() else math.nan

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly; nan when nothing was counted."""
        total = int(self.matrix.sum())
        return int(self.matrix.diagonal().sum()) / total if total else math.nan

    @property
    def total(self) -> int:
        """Pixels counted so far (ignored pixels excluded)."""
        return int(self.matrix.sum())

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, pixels={self.total}, "
            f"miou={self.miou():.4f})"
        )
