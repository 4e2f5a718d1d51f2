"""The lr schedule: linear warm-up to the peak, then cosine decay to final_lr_factor."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from streamdeq.train.recipe import ScheduleSection
from streamdeq.train.schedule import lr_factor


def test_warmup_rises_linearly_to_the_peak():
    schedule = ScheduleSection(max_steps=100, warmup_steps=4)
    assert [lr_factor(s, schedule) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("final", [0.0, 0.1])
def test_cosine_decays_monotonically_to_the_final_factor(final):
    schedule = ScheduleSection(max_steps=50, warmup_steps=5, final_lr_factor=final)
    values = [lr_factor(s, schedule) for s in range(5, 51)]
    assert values[0] == 1.0
    assert all(a >= b for a, b in pairwise(values))
    assert math.isclose(values[-1], final, abs_tol=1e-12)
    assert math.isclose(lr_factor(5 + 45 // 2, schedule), (1 + final) / 2, rel_tol=0.05)
