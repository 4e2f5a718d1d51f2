"""Memory (benchmark 5): the resident set size of one stream over many frames (it must stay
flat: the state is a fixed set of tensors), and what each extra stream in a
:class:`StreamBatch` adds.

RSS is read from /proc/self/statm (Linux); the peak from ``resource.getrusage``; on CUDA the
allocator's allocated and peak bytes are reported too. Growth is measured from the first sample
after the warm-up to the last: allocator caches fill during the first frames.
"""

from __future__ import annotations

import os
import resource
from typing import Any

import torch

from ..stream import StreamBatch, StreamDEQ
from .common import BenchReport, BenchSettings, environment
from .setup import SMALL, ModelSpec, panning_clip, scale_size

LONG_RUN_FRAMES = 10_000
TINY_SIZE = (32, 64)
MiB = 1024.0 * 1024.0


def rss_mib() -> float:
    """Current resident set size of this process in MiB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MiB
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_memory(settings: BenchSettings) -> BenchReport:
    label = f"{SMALL} (quick)" if settings.quick else SMALL
    spec = ModelSpec(SMALL, False, settings.size or TINY_SIZE, 1, label)
    model = spec.build(settings.device)
    size = scale_size(spec.size, model.input_multiple)
    frames = settings.frames or (100 if settings.quick else LONG_RUN_FRAMES)
    report = BenchReport("memory", "Memory: one long stream, and per extra stream in a batch")
    report.conditions = {**environment(settings), "model": label, "size": list(size)}
    summary, samples = _long_stream(model, size, frames, settings.device)
    report.rows.append(summary)
    report.series["rss_samples"] = samples
    report.rows += _per_stream(model, size, settings)
    report.notes.append(
        "growth = RSS at the end - RSS after the first 10% of frames; a flat stream grows by "
        "allocator noise only (no per-frame accumulation)"
    )
    return report


def _cuda_mib(device: str) -> dict[str, Any]:
    if device != "cuda":
        return {}
    return {
        "cuda_allocated_mib": torch.cuda.memory_allocated() / MiB,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / MiB,
    }


def _long_stream(model: Any, size: tuple[int, int], frames: int, device: str):
    clip = panning_clip(size, 64)  # cycled: the frames' content does not matter here
    stream = StreamDEQ(model, iters=2, device=device)
    checkpoint = max(frames // 10, 1)
    samples: list[dict[str, Any]] = []
    with torch.no_grad():
        for t in range(frames):
            stream.step(clip[t % len(clip)])
            if (t + 1) % checkpoint == 0:
                samples.append({"frame": t + 1, "rss_mib": rss_mib(), **_cuda_mib(device)})
    first, last = samples[0], samples[-1]
    growth = last["rss_mib"] - first["rss_mib"]
    summary = {
        "measure": f"one stream, {frames} frames (M=2)",
        "rss_first_mib": first["rss_mib"],
        "rss_last_mib": last["rss_mib"],
        "rss_max_sampled_mib": max(s["rss_mib"] for s in samples),
        "growth_mib": growth,
        "growth_kib_per_1000_frames": 1024.0 * growth / max(frames - first["frame"], 1) * 1000,
        "peak_rss_mib": peak_rss_mib(),
        **_cuda_mib(device),
    }
    return summary, samples


def _per_stream(model: Any, size: tuple[int, int], settings: BenchSettings) -> list[dict]:
    counts = (1, 2) if settings.quick else (1, 2, 4, 8)
    clip = panning_clip(size, 8)
    rows = []
    base_rss = None
    for n in counts:
        batch = StreamBatch(model, iters=2, device=settings.device)
        for i in range(n):
            batch.add_stream(i)
        with torch.no_grad():
            for t in range(4):
                batch.step({i: clip[t] for i in range(n)})
        state_bytes = sum(
            t.numel() * t.element_size() for i in range(n) for t in (batch.state_of(i) or [])
        )
        rss = rss_mib()
        base_rss = rss if base_rss is None else base_rss
        rows.append(
            {
                "measure": f"batch of {n} streams",
                "state_mib_per_stream": state_bytes / MiB / n,
                "rss_mib": rss,
                "rss_over_1_stream_mib": rss - base_rss,
                **_cuda_mib(settings.device),
            }
        )
        del batch
    return rows
