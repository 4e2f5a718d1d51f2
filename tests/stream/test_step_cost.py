"""A batched step's tensor work per stream stays small: with dozens of streams, per-stream
operations (each a kernel launch on a GPU, a GIL release and re-take, and, for read-backs, a
device->host synchronisation) outweighed the batched solve itself."""

from __future__ import annotations

import collections
import math

import numpy as np
import torch

from streamdeq.stream import StreamBatch
from streamdeq.stream.state import read_back_many

from ..op_count import OpCount

#: Tensor operations a step may add per stream (views included): 26 with the test model
#: (36 with the bundled one), about twice that when each stream's frame was prepared and its
#: outcome read back on its own.
PER_STREAM_OPS = 30


def step_ops(model, streams: int) -> collections.Counter:
    batch = StreamBatch(model, iters=2)
    frames = {}
    for i in range(streams):
        batch.add_stream(i)
        frames[i] = np.full((24, 32, 3), 10 * i, dtype=np.uint8)
    batch.step(frames)  # the first frame starts from zeros; count a warm one
    with OpCount() as counter:
        batch.step(frames)
    return counter.ops


def test_a_step_adds_few_operations_per_stream(model):
    one, many = step_ops(model, 1), step_ops(model, 9)
    per_stream = (sum(many.values()) - sum(one.values())) / 8
    assert per_stream <= PER_STREAM_OPS, (per_stream, many - one)
    # read back together: every stream's outcome in one transfer, not one per stream
    assert many["aten._to_copy.default"] - one["aten._to_copy.default"] <= 2


def test_read_back_many_keeps_each_streams_values_in_order():
    f32 = torch.tensor([1.5, 2.5])
    i64 = torch.tensor([7, 8])
    values = read_back_many([[f32[0], None, i64[0]], [], [i64[1], f32[1], torch.tensor(True)]])
    assert values[0][0] == 1.5 and math.isnan(values[0][1]) and values[0][2] == 7.0
    assert values[1] == [] and values[2] == [8.0, 2.5, 1.0]
