"""A carried solver memory is forgotten whenever the stream starts again from zeros."""

from __future__ import annotations

from streamdeq.solvers import BroydenMemory
from streamdeq.stream import StreamDEQ


def test_carried_broyden_memory_is_dropped_when_the_stream_resets(model, clip):
    memory = BroydenMemory()
    stream = StreamDEQ(model, iters=3, solver="broyden", solver_options={"carry": memory})
    stream.step(clip[0])
    stream.step(clip[1])
    assert memory.stored > 0
    held_at_reset = []
    forget = memory.reset
    memory.reset = lambda: (held_at_reset.append(memory.stored), forget())[-1]
    stream.reset()
    stream.step(clip[2])
    assert held_at_reset and held_at_reset[0] > 0  # it held pairs and was cleared first


def test_warm_started_frames_keep_the_carried_memory(model, clip):
    memory = BroydenMemory()
    stream = StreamDEQ(model, iters=3, solver="broyden", solver_options={"carry": memory})
    stream.step(clip[0])
    stored_after_first = memory.stored
    stream.step(clip[1])
    assert memory.stored > stored_after_first
