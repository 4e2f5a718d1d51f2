"""Box regression targets: the Faster R-CNN parametrisation of a box relative to a reference.

    dx = wx * (x_gt - x_ref) / w_ref      dw = ww * log(w_gt / w_ref)
    dy = wy * (y_gt - y_ref) / h_ref      dh = wh * log(h_gt / h_ref)

with (x, y) box centres and the weights scaling the targets to about unit variance (the RPN uses
(1, 1, 1, 1), the box head (10, 10, 5, 5)). Decoding clamps dw and dh at log(1000 / 16) so an
untrained regressor cannot produce exp overflow (infinite boxes) in the first iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: The largest log-scale change decoding allows: a box may grow at most 1000/16 times.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class BoxCoder:
    """Encode boxes as deltas from references and decode deltas back.

    Attributes:
        weights: (wx, wy, ww, wh), the target scales above.
        scale_clamp: upper bound of dw / ww and dh / wh when decoding.
    """

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    scale_clamp: float = DEFAULT_SCALE_CLAMP

    def encode(self, boxes: Tensor, references: Tensor) -> Tensor:
        """(N, 4) deltas that turn each of the (N, 4) ``references`` into the matching box."""
        ref_w, ref_h, ref_x, ref_y = _centre_form(references)
        box_w, box_h, box_x, box_y = _centre_form(boxes)
        wx, wy, ww, wh = self.weights
        return torch.stack(
            [
                wx * (box_x - ref_x) / ref_w,
                wy * (box_y - ref_y) / ref_h,
                ww * torch.log(box_w / ref_w),
                wh * torch.log(box_h / ref_h),
            ],
            dim=1,
        )

    def decode(self, deltas: Tensor, references: Tensor) -> Tensor:
        """Boxes from deltas.

        Args:
            deltas: (N, 4 * K) deltas, K boxes per reference (e.g. one per class).
            references: (N, 4) boxes the deltas are relative to.

        Returns:
            (N, 4 * K) boxes, x1 y1 x2 y2 for each of the K.
        """
        references = references.to(deltas.dtype)
        ref_w, ref_h, ref_x, ref_y = (t[:, None] for t in _centre_form(references))
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.scale_clamp)
        centre_x = dx * ref_w + ref_x
        centre_y = dy * ref_h + ref_y
        half_w = 0.5 * torch.exp(dw) * ref_w
        half_h = 0.5 * torch.exp(dh) * ref_h
        boxes = torch.stack(
            [centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=2
        )
        return boxes.flatten(1)


def _centre_form(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return widths, heights, boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
