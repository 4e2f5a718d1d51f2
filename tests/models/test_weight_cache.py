"""The weight-normalised convolution's cached weight: reused across frames in inference,
recomputed whenever it could be stale."""

from __future__ import annotations

import torch

from streamdeq.models.layers import WeightNormConv2d


def _conv():
    torch.manual_seed(0)
    return WeightNormConv2d(4, 6, 3, wnorm=True)


def test_inference_refresh_reuses_the_cached_weight():
    conv = _conv()
    with torch.no_grad():
        conv.refresh()
        first = conv._cached
        conv.refresh()
    assert conv._cached is first


def test_an_in_place_parameter_update_is_seen_by_the_next_refresh():
    conv = _conv()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        conv.refresh()
        before = conv(x)
        conv.weight_g.mul_(2.0)  # what an optimizer step does to a parameter
        conv.refresh()
        after = conv(x)
    torch.testing.assert_close(after, 2.0 * before)


def test_a_replaced_parameter_tensor_is_seen_by_the_next_refresh():
    conv = _conv()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        conv.refresh()
        before = conv(x)
    conv.weight_g = torch.nn.Parameter(conv.weight_g.detach() * 3.0)
    with torch.no_grad():
        conv.refresh()
        torch.testing.assert_close(conv(x), 3.0 * before)


def test_with_gradients_every_refresh_builds_a_fresh_graph():
    conv = _conv()
    with torch.no_grad():
        conv.refresh()
    conv.refresh()
    first = conv._cached
    assert first.requires_grad
    conv.refresh()
    assert conv._cached is not first
    conv(torch.randn(1, 4, 5, 5)).sum().backward()
    assert conv.weight_v.grad is not None and conv.weight_g.grad is not None
