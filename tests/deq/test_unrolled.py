"""Weight-tied unrolling for pretraining."""

from __future__ import annotations

import pytest
import torch

from streamdeq.deq import DEQSettingsError, unrolled_forward

from .test_implicit import tanh_input


def test_equals_applying_f_num_layers_times(tanh_cell):
    x = tanh_input()
    z = tanh_cell.zeros(3)
    expected = z
    for _ in range(4):
        expected = tanh_cell(expected, x)
    got = unrolled_forward(tanh_cell, None, (x,), 4, like=z)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradient_flows_through_every_layer(tanh_cell):
    x = tanh_input()
    z = unrolled_forward(tanh_cell, tanh_cell.zeros(3), (x,), 3)
    sum(t.sum() for t in z).backward()
    assert tanh_cell.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("num_layers", [0, -1, 2.0, True])
def test_rejects_a_bad_number_of_layers(num_layers, tanh_cell):
    with pytest.raises(DEQSettingsError):
        unrolled_forward(tanh_cell, tanh_cell.zeros(3), (tanh_input(),), num_layers)


def test_zero_start_needs_shapes(tanh_cell):
    with pytest.raises(DEQSettingsError, match="like"):
        unrolled_forward(tanh_cell, None, (tanh_input(),), 2)
