"""The GPU section (benchmark 6): StreamDEQ on CUDA with f run eagerly, compiled with
torch.compile, or replayed from a captured CUDA graph, and the device->host synchronisations a
frame makes. Skipped, with a note, where CUDA is not available.

Why a CUDA graph helps: on a GPU the MDEQ block is dozens of small kernels, and at small
resolutions their launch cost is a large part of f. Replaying a captured graph launches them
all at once. The graph reads and writes fixed buffers, so :class:`GraphedF` copies the state in
and the result out (two passes over the state, cheap on a GPU), which keeps the solvers'
iterates from being overwritten by the next replay.

Synchronisations are counted with ``torch.cuda.set_sync_debug_mode("warn")``: one warning per
synchronising call. A fixed-budget solve should make none; the engine reads a frame's
residuals and counts back once per frame, by design.
"""

from __future__ import annotations

import statistics
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..solvers import solve
from ..stream import StreamDEQ
from .common import BenchReport, BenchSettings, environment, interleaved, median_ms
from .setup import (
    PAPER_SIZE,
    QUICK_SIZE,
    SMALL,
    ModelSpec,
    panning_clip,
    partly_solved_state,
    random_input,
    scale_size,
)

ITERS = (1, 2, 4, 8)


class WithF:
    """A streamable model whose f is replaced (compiled or graphed); everything else is the
    wrapped model's."""

    def __init__(self, model: Any, f: Callable[..., list[Tensor]]) -> None:
        self.model, self.f = model, f
        self.config, self.input_multiple = model.config, model.input_multiple

    def inject(self, x: Tensor) -> list[Tensor | None]:
        return self.model.inject(x)

    def init_state(self, injection: list[Tensor | None]) -> list[Tensor]:
        return self.model.init_state(injection)

    def head(self, z: list[Tensor]) -> Tensor:
        return self.model.head(z)

    def parameters(self):
        return self.model.parameters()


class GraphedF:
    """f(z, injection) replayed from a CUDA graph captured for one set of shapes; other shapes
    (a batch subset, another frame size) fall back to the eager f."""

    def __init__(self, model: Any, state: list[Tensor], injection: list[Tensor | None]) -> None:
        self.model = model
        self.static_z = [t.clone() for t in state]
        self.static_inj = [None if t is None else t.clone() for t in injection]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(2):
                model.f(self.static_z, self.static_inj)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = model.f(self.static_z, self.static_inj)
        # which injection the static buffers hold: weak references, because a freed frame's
        # injection and the next frame's can share an address (the caching allocator)
        self._loaded: list[tuple[weakref.ref, int]] = []

    def __call__(self, z: list[Tensor], injection: list[Tensor | None]) -> list[Tensor]:
        if any(a.shape != b.shape for a, b in zip(z, self.static_z, strict=True)) or any(
            (a is None) != (b is None) or (a is not None and a.shape != b.shape)
            for a, b in zip(injection, self.static_inj, strict=True)
        ):
            return self.model.f(z, injection)
        for dst, src in zip(self.static_z, z, strict=True):
            dst.copy_(src)
        self.load_injection(injection)
        self.graph.replay()
        return [t.clone() for t in self.static_out]

    def load_injection(self, injection: list[Tensor | None]) -> bool:
        """Copy ``injection`` into the graph's buffers unless they already hold it (a solve
        calls f tens of times with one frame's injection); returns whether it copied."""
        present = [t for t in injection if t is not None]
        if len(self._loaded) == len(present) and all(
            ref() is t and version == t._version
            for (ref, version), t in zip(self._loaded, present, strict=True)
        ):
            return False
        for dst, src in zip(self.static_inj, injection, strict=True):
            if dst is not None:
                dst.copy_(src)
        self._loaded = [(weakref.ref(t), t._version) for t in present]
        return True


def count_syncs(fn: Callable[[], Any]) -> int:
    """How many synchronising CUDA calls ``fn`` makes."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def run_gpu(settings: BenchSettings) -> BenchReport:
    report = BenchReport("gpu", "On CUDA: eager vs compiled vs CUDA-graph f, syncs per frame")
    if not torch.cuda.is_available():
        report.conditions = environment(settings)
        report.notes.append("skipped: CUDA is not available on this machine")
        return report
    cuda = BenchSettings(**{**settings.__dict__, "device": "cuda"})
    report.conditions = environment(cuda)
    label = f"{SMALL} (quick)" if settings.quick else SMALL
    spec = ModelSpec(
        SMALL, False, settings.size or (QUICK_SIZE if settings.quick else PAPER_SIZE), 1, label
    )
    model = spec.build("cuda")
    x = random_input(model, spec.size, "cuda")
    size = scale_size(spec.size, model.input_multiple)
    report.conditions.update(model=label, size=list(size))
    state = partly_solved_state(model, x)
    with torch.no_grad():
        injection = model.inject(x)
        fs: dict[str, Callable] = {"eager": model.f}
        for name, build in (
            ("compiled", lambda: torch.compile(model.f)),
            ("cuda graph", lambda: GraphedF(model, state, injection)),
        ):
            try:
                candidate = build()
                candidate(state, injection)  # compile / capture now, not while timing
                fs[name] = candidate
            except Exception as error:
                report.notes.append(f"{name} f unavailable: {type(error).__name__}: {error}")
        bare = {f"bare f ({name})": (lambda fn=fn: fn(state, injection)) for name, fn in fs.items()}
        samples = interleaved(bare, settings.repeats * 3, settings.warmup, torch.cuda.synchronize)
        eager_ms = median_ms(samples["bare f (eager)"])
        for key, vals in samples.items():
            report.rows.append(
                {"variant": key, "ms": median_ms(vals), "vs_eager": median_ms(vals) / eager_ms}
            )
        for name, fn in fs.items():
            syncs = count_syncs(lambda fn=fn: solve(fn, state, (injection,), max_iter=4))
            report.rows.append({"variant": f"broyden M=4 solve ({name})", "syncs": syncs})
        report.rows += frame_rows(model, fs, size, settings)
    return report


def frame_rows(
    model: Any,
    fs: dict[str, Callable],
    size: tuple[int, int],
    settings: BenchSettings,
    count: Callable[[Callable[[], Any]], int] = count_syncs,
) -> list[dict]:
    """The latency table with each f in ``fs`` (which must include "eager"), every scheme on the
    same clip, and ``count``'s synchronisations on each scheme's last frame."""
    iters = (1, 2) if settings.quick else ITERS
    frames = (settings.frames or (3 if settings.quick else 10)) + 2
    clip = panning_clip(size, frames)
    rows = []
    schemes: dict[str, StreamDEQ] = {}
    for name, fn in fs.items():
        wrapped = model if name == "eager" else WithF(model, fn)
        schemes[f"baseline ({name})"] = StreamDEQ(wrapped, mode="baseline")
        for m in iters:
            schemes[f"stream M={m} ({name})"] = StreamDEQ(wrapped, iters=m)
    latency: dict[str, list[float]] = {key: [] for key in schemes}
    syncs: dict[str, int] = {}
    with torch.no_grad():
        for t, frame in enumerate(clip):
            for key, stream in schemes.items():
                if t == frames - 1:  # the last frame: count its synchronisations
                    syncs[key] = count(lambda s=stream, fr=frame: s.step(fr))
                    continue
                info = stream.step(frame).info
                if t >= 2:
                    latency[key].append(info.latency_ms)
    base = {name: statistics.median(latency[f"baseline ({name})"]) for name in fs}
    for key in schemes:
        name = key.rsplit("(", 1)[1].rstrip(")")
        ms = statistics.median(latency[key])
        rows.append(
            {
                "variant": key,
                "ms": ms,
                "fps": 1000.0 / ms,
                "speedup_vs_baseline": base[name] / ms,
                "syncs_per_frame": syncs.get(key),
            }
        )
    return rows
