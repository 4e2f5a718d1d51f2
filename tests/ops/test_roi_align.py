from __future__ import annotations

import importlib
import math

import pytest
import torch

from streamdeq.ops import roi_align


def _bilinear_by_hand(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """The standard RoIAlign sampling rule for one point of a (C, H, W) map."""
    _, height, width = fmap.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = math.floor(y), math.floor(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * fmap[:, y0, x0]
        + (1 - ly) * lx * fmap[:, y0, x1]
        + ly * (1 - lx) * fmap[:, y1, x0]
        + ly * lx * fmap[:, y1, x1]
    )


def _roi_align_by_hand(features, rois, size, scale, ratio, aligned):
    out = torch.zeros(rois.shape[0], features.shape[1], size, size, dtype=features.dtype)
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy = x1 * scale - offset, y1 * scale - offset
        w, h = x2 * scale - offset - sx, y2 * scale - offset - sy
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        bw, bh = w / size, h / size
        gh = ratio if ratio > 0 else math.ceil(h / size)
        gw = ratio if ratio > 0 else math.ceil(w / size)
        count = max(gh * gw, 1)
        for py in range(size):
            for px in range(size):
                acc = torch.zeros(features.shape[1], dtype=features.dtype)
                for iy in range(gh):
                    for ix in range(gw):
                        y = sy + py * bh + (iy + 0.5) * bh / gh
                        x = sx + px * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear_by_hand(features[int(b)], y, x)
                out[k, :, py, px] = acc / count
    return out


def _random_rois(count, gen, batch, height, width, scale):
    """Boxes in image coordinates, some reaching past every border of the image."""
    img_h, img_w = height / scale, width / scale
    x = torch.rand(count, 2, generator=gen) * img_w * 1.4 - 0.2 * img_w
    y = torch.rand(count, 2, generator=gen) * img_h * 1.4 - 0.2 * img_h
    x, y = x.sort(dim=1).values, y.sort(dim=1).values
    idx = torch.randint(0, batch, (count,), generator=gen).double()
    return torch.stack([idx, x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("ratio", [2, 0])
def test_roi_align_matches_per_sample_reference(aligned, ratio):
    gen = torch.Generator().manual_seed(3 + ratio + int(aligned))
    features = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64)
    rois = _random_rois(12, gen, batch=2, height=9, width=11, scale=0.5)
    got = roi_align(features, rois, 3, spatial_scale=0.5, sampling_ratio=ratio, aligned=aligned)
    expected = _roi_align_by_hand(features, rois, 3, 0.5, ratio, aligned)
    torch.testing.assert_close(got, expected)


def test_roi_align_reads_zero_for_boxes_entirely_outside_the_map():
    features = torch.ones(1, 2, 4, 4)
    rois = torch.tensor([[0.0, 20.0, 20.0, 30.0, 30.0]])
    assert roi_align(features, rois, 2, aligned=True).abs().sum().item() == 0.0


def test_roi_align_of_a_constant_map_inside_the_image_is_that_constant():
    features = torch.full((1, 1, 8, 8), 2.5)
    rois = torch.tensor([[0.0, 0.0, 0.0, 8.0, 8.0], [0.0, 2.3, 1.1, 5.7, 6.2]])
    out = roi_align(features, rois, 4, sampling_ratio=0, aligned=True)
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


def test_roi_align_accepts_per_image_box_lists():
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(2, 3, 6, 6, generator=gen)
    per_image = [
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
        torch.tensor([[1.0, 1.0, 5.0, 3.0], [0.0, 2.0, 6.0, 6.0]]),
    ]
    rows = torch.tensor([[0, 0, 0, 4, 4], [1, 1, 1, 5, 3], [1, 0, 2, 6, 6]], dtype=torch.float32)
    torch.testing.assert_close(roi_align(features, per_image, 2), roi_align(features, rows, 2))


def test_roi_align_of_no_boxes_is_empty():
    features = torch.randn(2, 3, 5, 5)
    assert roi_align(features, torch.zeros(0, 5), (2, 3)).shape == (0, 3, 2, 3)
    assert roi_align(features, [torch.zeros(0, 4), torch.zeros(0, 4)], 2).shape == (0, 3, 2, 2)


def test_roi_align_is_differentiable_wrt_features():
    gen = torch.Generator().manual_seed(9)
    features = torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.7, 4.2, 3.9], [0, -1.0, 2.0, 5.5, 6.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda f: roi_align(f, rois, 2, spatial_scale=1.0, sampling_ratio=0, aligned=True),
        (features,),
    )


def test_roi_align_rejects_rois_without_a_batch_column():
    with pytest.raises(ValueError, match="batch_index"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4), 2)


def test_roi_align_in_small_chunks_matches_the_reference(monkeypatch):
    # the package re-exports the function under the module's name: fetch the module itself
    module = importlib.import_module("streamdeq.ops.roi_align")
    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 40)  # a chunk per box or two
    gen = torch.Generator().manual_seed(11)
    features = torch.randn(2, 2, 12, 12, generator=gen, dtype=torch.float64)
    rois = _random_rois(9, gen, batch=2, height=12, width=12, scale=1.0)
    got = roi_align(features, rois, 2, sampling_ratio=0, aligned=True)
    torch.testing.assert_close(got, _roi_align_by_hand(features, rois, 2, 1.0, 0, True))
