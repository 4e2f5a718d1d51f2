"""Channels-last states: the solvers flatten a state in the order of its memory layout, so a
channels-last state (faster convolutions on CPUs) costs no per-iteration reordering, keeps its
layout through the solve, and gives the same iterates as the same state in NCHW."""

from __future__ import annotations

import pytest
import torch

from streamdeq.solvers import solve
from streamdeq.solvers.base import channels_last, flatten, unflatten

from .conftest import METHODS

CL = torch.channels_last


def _state(bsz: int = 2, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(bsz, 4, 6, 8, generator=gen, dtype=torch.float64),
        torch.randn(bsz, 8, 3, 4, generator=gen, dtype=torch.float64),
    ]


def test_layout_is_read_from_strides_including_row_slices():
    a = _state()[0]
    assert not channels_last(a)
    cl = a.contiguous(memory_format=CL)
    assert channels_last(cl) and channels_last(cl[1:])
    assert not channels_last(torch.randn(2, 1, 6, 8))  # one channel: NCHW and NHWC agree
    assert not channels_last(torch.randn(2, 5, 1, 1).contiguous(memory_format=CL))
    assert not channels_last(torch.randn(2, 5))


def test_channels_last_state_round_trips_through_views():
    state = [t.contiguous(memory_format=CL) for t in _state()]
    flat = flatten(state)
    back = unflatten(flat, state)
    for original, view in zip(state, back, strict=True):
        torch.testing.assert_close(view, original, rtol=0, atol=0)
        assert channels_last(view)
        assert view.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    # the flat order is the memory order: flattening the views copies nothing out of order
    torch.testing.assert_close(flatten(back), flat, rtol=0, atol=0)


def test_f_output_in_another_layout_is_flattened_in_the_states_order():
    like = [t.contiguous(memory_format=CL) for t in _state()]
    nchw = [t.contiguous() for t in like]
    torch.testing.assert_close(flatten(nchw, like), flatten(like), rtol=0, atol=0)


class ConvMap:
    """A contractive f on a two-branch image state, layout-agnostic like a real MDEQ block:
    z_i -> 0.5 tanh(conv(z_i)) + injection_i."""

    def __init__(self, seed: int = 1):
        gen = torch.Generator().manual_seed(seed)
        self.w = [
            0.3 * torch.randn(4, 4, 3, 3, generator=gen, dtype=torch.float64),
            0.3 * torch.randn(8, 8, 3, 3, generator=gen, dtype=torch.float64),
        ]

    def __call__(self, z, injection):
        return [
            0.5 * torch.tanh(torch.nn.functional.conv2d(t, w, padding=1)) + u
            for t, w, u in zip(z, self.w, injection, strict=True)
        ]


@pytest.mark.parametrize("method", METHODS)
def test_channels_last_solve_matches_the_nchw_solve_and_keeps_its_layout(method):
    f = ConvMap()
    injection = _state(seed=3)
    z0 = [torch.zeros_like(t) for t in injection]
    plain = solve(f, z0, (injection,), method=method, max_iter=6)
    cl_inj = [t.contiguous(memory_format=CL) for t in injection]
    cl_z0 = [t.contiguous(memory_format=CL) for t in z0]
    cl = solve(f, cl_z0, (cl_inj,), method=method, max_iter=6)
    for a, b in zip(plain.z, cl.z, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
        assert channels_last(b)
    torch.testing.assert_close(cl.rel_trace, plain.rel_trace, rtol=1e-10, atol=1e-12)
