from __future__ import annotations

import torch

from streamdeq.ops import base_anchors, grid_anchors


def test_base_anchors_have_the_requested_area_and_aspect_ratio():
    anchors = base_anchors([16.0, 32.0], [0.5, 1.0, 2.0])
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(widths * heights, torch.tensor([16.0, 32.0] * 3) ** 2)
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 0.5, 1.0, 1.0, 2.0, 2.0]))
    torch.testing.assert_close(anchors[:, :2] + anchors[:, 2:], torch.zeros(6, 2))


def test_grid_anchors_repeat_the_base_at_every_stride_pixel_major():
    base = base_anchors([8.0], [1.0, 2.0])
    anchors = grid_anchors(base, (2, 3), (4.0, 4.0))
    assert anchors.shape == (2 * 3 * 2, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    # pixel (row 1, col 2) holds anchors 10 and 11, centred at (x, y) = (8, 4)
    torch.testing.assert_close(centres[10:12], torch.tensor([[8.0, 4.0], [8.0, 4.0]]))
    torch.testing.assert_close(
        anchors[10:12] - anchors[0:2], torch.tensor([[8.0, 4.0, 8.0, 4.0]] * 2)
    )
