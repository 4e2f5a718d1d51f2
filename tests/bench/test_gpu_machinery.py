"""The parts of the GPU benchmark that do not need CUDA, checked on the CPU: a replaced f
streams exactly like the model's own, the per-variant latency table, and the CUDA-graph
wrapper's rule for when to copy a frame's injection into its buffers (CI has no GPU, so
these are the only checks the GPU benchmark gets there)."""

from __future__ import annotations

import torch

from streamdeq.bench import BenchSettings
from streamdeq.bench.gpu import GraphedF, WithF, frame_rows
from streamdeq.bench.setup import QUICK_OVERRIDES, SMALL, panning_clip
from streamdeq.models import create_model
from streamdeq.stream import StreamDEQ


def _model():
    torch.manual_seed(0)
    return create_model(SMALL, **QUICK_OVERRIDES).eval()


def test_a_replaced_f_streams_exactly_like_the_models_own():
    model = _model()
    calls = []

    def counted_f(z, injection):
        calls.append(1)
        return model.f(z, injection)

    clip = panning_clip((64, 128), 3)
    plain, wrapped = StreamDEQ(model, iters=2), StreamDEQ(WithF(model, counted_f), iters=2)
    with torch.no_grad():
        for frame in clip:
            a, b = plain.step(frame), wrapped.step(frame)
            torch.testing.assert_close(a.output, b.output, rtol=0, atol=0)
    assert len(calls) == 3 * 2  # M evaluations a frame, all through the replacement


def test_frame_rows_report_every_scheme_for_every_f():
    model = _model()
    fs = {"eager": model.f, "compiled": lambda z, inj: model.f(z, inj)}
    settings = BenchSettings(quick=True, repeats=1, warmup=0, threads=1, frames=2)
    with torch.no_grad():
        rows = frame_rows(model, fs, (64, 128), settings, count=lambda fn: (fn(), 0)[1])
    variants = {row["variant"] for row in rows}
    for name in fs:
        assert {f"baseline ({name})", f"stream M=1 ({name})", f"stream M=2 ({name})"} <= variants
    for row in rows:
        assert row["ms"] > 0 and row["syncs_per_frame"] == 0
        if row["variant"].startswith("baseline"):
            assert row["speedup_vs_baseline"] == 1.0


def test_graph_buffers_take_a_new_injection_once_and_a_changed_one_again():
    graphed = object.__new__(GraphedF)  # no capture on the CPU: only the copy rule is tested
    graphed.static_inj = [torch.zeros(2, 3), None]
    graphed._loaded = []
    first = [torch.ones(2, 3), None]
    assert graphed.load_injection(first)
    assert not graphed.load_injection(first)  # the same frame's solve: no copy
    torch.testing.assert_close(graphed.static_inj[0], first[0])
    first[0].add_(1)  # changed in place: copied again
    assert graphed.load_injection(first)
    torch.testing.assert_close(graphed.static_inj[0], torch.full((2, 3), 2.0))
    second = [torch.full((2, 3), 5.0), None]  # the next frame
    assert graphed.load_injection(second)
    torch.testing.assert_close(graphed.static_inj[0], second[0])


def test_graph_buffers_are_not_fooled_by_a_new_tensor_at_a_freed_address():
    graphed = object.__new__(GraphedF)
    graphed.static_inj = [torch.zeros(64, 64)]
    graphed._loaded = []
    old = [torch.ones(64, 64)]
    graphed.load_injection(old)
    del old  # the next frame's injection may reuse the memory (always likely on CUDA)
    new = [torch.full((64, 64), 7.0)]
    assert graphed.load_injection(new)
    torch.testing.assert_close(graphed.static_inj[0], new[0])
