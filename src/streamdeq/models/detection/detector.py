"""Faster R-CNN + FPN on an MDEQ backbone, split the way a stream calls it.

The backbone's equilibrium state z (one tensor per resolution) is the detector's feature
pyramid before the neck, so the split is the MDEQ's own: ``inject``, ``init_state`` and ``f`` are
the backbone's, and ``head(z)`` runs FPN -> RPN -> box head -> post-processing and returns
detections. :class:`~streamdeq.stream.StreamDEQ` therefore streams detection exactly as it
streams segmentation: warm-started solver steps on z, then the head once per frame.

Training: :meth:`MDEQDetector.forward` with targets reaches z through the backbone's own
training path (unrolled pretraining, or the fixed point with implicit differentiation and the
Jacobian penalty, see :meth:`MDEQModel.forward`) and returns the four Faster R-CNN losses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..._deprecated import warn_deprecated
from ...solvers import SolverResult
from ..mdeq import ForwardResult, MDEQModel
from .fpn import FeaturePyramid
from .roi_heads import Detections, RoIHeads
from .rpn import RegionProposalNetwork

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import DetectorConfig

#: The losses a training forward returns.
LOSS_NAMES = ("loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box_reg")


class MDEQDetector(nn.Module):
    """An MDEQ detector (see the module docstring).

    Attributes:
        config: its :class:`DetectorConfig`.
        backbone: the :class:`MDEQModel` (without a task head).
        fpn, rpn, roi_heads: the neck and the two heads.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        # the backbone is built as a segmentation MDEQ (BatchNorm momentum of the official
        # dense-prediction models); its per-pixel head is replaced by nothing
        backbone_config = dataclasses.replace(config.backbone, task="segmentation", num_classes=1)
        self.backbone = MDEQModel(backbone_config)
        self.backbone.task_head = nn.Identity()
        self.fpn = FeaturePyramid(config.backbone.num_channels, config.fpn_channels)
        self.rpn = RegionProposalNetwork(config)
        self.roi_heads = RoIHeads(config)

    # ------------------------------------------------------------------ the streamable split

    @property
    def input_multiple(self) -> int:
        return self.backbone.input_multiple

    @property
    def last_jac_loss(self) -> Tensor | None:
        """Deprecated: use ``forward_with_info(x, targets).jac_loss``."""
        warn_deprecated("MDEQDetector.last_jac_loss", "forward_with_info(x, targets).jac_loss")
        return self.backbone._last_jac_loss

    @property
    def last_solver_result(self) -> SolverResult | None:
        """Deprecated: use ``forward_with_info(x).solver``."""
        warn_deprecated("MDEQDetector.last_solver_result", "forward_with_info(x).solver")
        return self.backbone._last_solver_result

    def inject(self, x: Tensor) -> list[Tensor | None]:
        """The backbone's injection of a (B, 3, H, W) normalised batch (see MDEQModel.inject)."""
        return self.backbone.inject(x)

    def init_state(self, injection: Sequence[Tensor | None]) -> list[Tensor]:
        return self.backbone.init_state(injection)

    def f(
        self, z: Sequence[Tensor], injection: Sequence[Tensor | None], *args: Any
    ) -> list[Tensor]:
        """One application of the backbone's equilibrium layer (see MDEQModel.f)."""
        return self.backbone.f(z, injection, *args)

    def f_args(self, injection: list[Tensor | None]) -> tuple:
        return self.backbone.f_args(injection)

    def head(self, z: Sequence[Tensor]) -> Detections:
        """Detections of a state: one dict per image with ``boxes`` (N, 4) x1 y1 x2 y2 in input
        pixels, ``scores`` (N,) and ``labels`` (N,) (the config's class ids), best first.

        The input size is that of the state: z[0] is at stride 2**downsample_times.
        """
        return self.detect(self.fpn(z), self.image_size(z))

    def detect(self, features: list[Tensor], image_size: tuple[int, int]) -> Detections:
        proposals, _ = self.rpn(features, image_size)
        detections, _ = self.roi_heads(features, proposals, image_size)
        return detections

    def image_size(self, z: Sequence[Tensor]) -> tuple[int, int]:
        stride = self.config.strides[0]
        return (z[0].shape[-2] * stride, z[0].shape[-1] * stride)

    def crop_output(
        self, detections: Detections, size: tuple[int, int], padded_size: tuple[int, int]
    ) -> Detections:
        """Detections on a frame padded to ``padded_size`` -> detections on the ``size`` (H, W)
        frame: boxes clipped to it, those left without area dropped (with their scores and
        labels). The stream engine calls this instead of its dense crop."""
        if tuple(size) == tuple(padded_size):
            return detections
        return [_clip_to_frame(d, size) for d in detections]

    def rescale_output(self, detections: Detections, scale: tuple[float, float]) -> Detections:
        """Detections on a resized frame -> detections in the frame's own pixels: boxes
        (x1 y1 x2 y2) times ``scale`` = (sy, sx), source pixels per model pixel. The stream
        engine calls this after :meth:`crop_output` when it resized the frame."""
        sy, sx = scale
        return [_scaled_boxes(d, sx, sy) for d in detections]

    # ------------------------------------------------------------------ solving / training

    def solve(self, x: Tensor, z0: Sequence[Tensor] | None = None, **options: Any):
        """The backbone's solve (see MDEQModel.solve): (z, SolverResult)."""
        return self.backbone.solve(x, z0, **options)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> dict[str, Tensor] | Detections:
        """Losses (with ``targets``) or detections (without) of a (B, 3, H, W) batch; the
        arguments are :meth:`forward_with_info`'s."""
        return self.forward_with_info(x, *args, **kwargs).output

    def forward_with_info(
        self,
        x: Tensor,
        targets: Sequence[dict[str, Tensor]] | None = None,
        max_iter: int | None = None,
        solver: str = "broyden",
        tol: float | None = None,
        train_step: int = -1,
        **deq_options: Any,
    ) -> ForwardResult:
        """The forward pass with the backbone's state, solver result and Jacobian penalty
        (see :meth:`MDEQModel.forward_with_info`); ``output`` is what :meth:`forward` returns.

        Args:
            targets: per image a dict with ``boxes`` (N, 4) x1 y1 x2 y2 pixels and ``labels``
                (N,) class ids; boxes of ids not in ``config.class_ids`` are ignored.
            max_iter, solver, tol, train_step, deq_options: as :meth:`MDEQModel.forward`
                (``backward``, ``jac_samples``, solver options).

        Returns:
            a :class:`ForwardResult` whose ``output`` is, with targets, ``{name: scalar}`` for
            :data:`LOSS_NAMES` (the Jacobian penalty, if asked for, is its ``jac_loss``);
            without, :meth:`head`'s detections.
        """
        found = self.backbone.forward_with_info(
            x, max_iter=max_iter, solver=solver, tol=tol, train_step=train_step, **deq_options
        )
        output = self.head(found.z) if targets is None else self.losses(found.z, targets)
        return dataclasses.replace(found, output=output)

    def losses(
        self, z: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """The four Faster R-CNN losses (:data:`LOSS_NAMES`) of a state (with its graph) and
        its images' targets (see :meth:`forward`)."""
        if len(targets) != z[0].shape[0]:
            raise ValueError(f"got {len(targets)} targets for {z[0].shape[0]} images")
        features = self.fpn(z)
        image_size = self.image_size(z)
        targets = [self._known_classes(t) for t in targets]
        proposals, rpn_losses = self.rpn(features, image_size, targets)
        _, roi_losses = self.roi_heads(features, proposals, image_size, targets)
        return {**rpn_losses, **roi_losses}

    def _known_classes(self, target: dict[str, Tensor]) -> dict[str, Tensor]:
        known = (
            self.roi_heads.class_indices(target["labels"].to(self.roi_heads.class_ids.device)) > 0
        )
        return {"boxes": target["boxes"][known], "labels": target["labels"][known]}


def _clip_to_frame(detections: dict[str, Tensor], size: tuple[int, int]) -> dict[str, Tensor]:
    boxes = detections["boxes"]
    height, width = size
    clipped = torch.minimum(boxes, boxes.new_tensor([width, height, width, height]))
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    per_box = {
        k: v[keep] for k, v in detections.items() if isinstance(v, Tensor) and len(v) == len(boxes)
    }
    return {**detections, **per_box, "boxes": clipped[keep]}


def _scaled_boxes(detections: dict[str, Tensor], sx: float, sy: float) -> dict[str, Tensor]:
    boxes = detections["boxes"]
    return {**detections, "boxes": boxes * boxes.new_tensor([sx, sy, sx, sy])}
