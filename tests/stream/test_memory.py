"""The state is fixed in size: nothing a stream holds grows with the frames it has seen."""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import numpy as np
import torch

from streamdeq.stream import StreamBatch, StreamDEQ


def _live_tensors() -> tuple[int, int]:
    """Count and bytes of the tensors alive in the process."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() pokes deprecated torch module attributes
        warnings.simplefilter("ignore")
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    return len(tensors), sum(t.numel() * t.element_size() for t in tensors)


def _frames(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for t in range(count):
        yield np.roll(base, t % 8, axis=1)


@torch.no_grad()
def test_memory_is_constant_over_2000_frames(model):
    stream = StreamDEQ(model, iters=1, shot_policy="boost")
    frames = _frames(2000)
    tracemalloc.start()
    try:
        for frame in (next(frames) for _ in range(200)):
            stream.step(frame)
        tensors_before = _live_tensors()
        start, _ = tracemalloc.get_traced_memory()
        for frame in frames:
            stream.step(frame)
        tensors_after = _live_tensors()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.frame_index == 2000
    assert tensors_after == tensors_before
    # Python objects: allocator noise only; keeping a 100-byte record per frame would be 180 KB
    assert end - start < 64 * 1024


@torch.no_grad()
def test_batch_memory_is_constant_as_streams_come_and_go(model):
    batch = StreamBatch(model, iters=2)
    frames = list(_frames(8))

    def run(steps: int) -> None:
        for t in range(steps):
            stream_id = t % 5
            if stream_id in batch:
                batch.remove_stream(stream_id)
            batch.add_stream(stream_id)
            batch.step({i: frames[t % 8] for i in batch.stream_ids})

    run(50)
    before = _live_tensors()
    run(200)
    assert _live_tensors() == before
