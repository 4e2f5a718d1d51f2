"""What crash-safe video output costs: file size and encoder CPU time of the fragmented MP4 with
keyframes forced every K frames, against a plain (index at the end) MP4 of the same frames.

The writer forces a keyframe every ``flush_seconds`` of wall time; a run processing P frames/s
therefore gets a keyframe every ``P * flush_seconds`` frames. This script fakes the writer's clock
so that the keyframe interval is exact (every 5, 10, 50 frames = 2.5, 5, 25 frames/s at 2 s),
encodes 300 generated 320x240 street frames with each variant in turn (6 interleaved rounds,
libx264 crf 20 veryfast) and prints the median CPU time and the size of each.

    .venv/bin/python benchmarks/fragment_cost.py
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamdeq.data import sinks
from streamdeq.data.synthetic import SceneSettings, generate_clip

FPS = 25
ROUNDS = 6
SIZE = (240, 320)


def plain(path: Path, frames: np.ndarray) -> None:
    """The previous output: one moov index written at the end."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        options = {"crf": "20", "preset": "veryfast"}
        stream = container.add_stream("libx264", rate=Fraction(FPS), options=options)
        stream.height, stream.width = SIZE
        stream.pix_fmt = "yuv420p"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def fragmented(path: Path, frames: np.ndarray, every: int | None) -> None:
    """The crash-safe writer, its clock advancing 1/every s a frame (flush_seconds 1)."""
    ticks = itertools.count(0.0, 1.0 / every) if every else itertools.count(0.0, 0.0)
    original = sinks.monotonic
    sinks.monotonic = lambda: next(ticks)
    try:
        flush = 0.999999 if every else 1e12
        writer = sinks.VideoWriter(path, FPS, (SIZE[1], SIZE[0]), flush_seconds=flush)
        for image in frames:
            writer.write(image)
        writer.finish()
    finally:
        sinks.monotonic = original


def main() -> None:
    frames = generate_clip(3, 300, SceneSettings(height=SIZE[0], width=SIZE[1])).frames
    variants = {"plain mp4 (index at the end)": lambda p: plain(p, frames)}
    variants["fragmented, no forced keyframe"] = lambda p: fragmented(p, frames, None)
    for every in (50, 10, 5):
        variants[f"fragmented, keyframe every {every}"] = lambda p, e=every: fragmented(
            p, frames, e
        )
    times: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(ROUNDS):
            names = list(variants)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in names:
                path = Path(folder) / f"{list(variants).index(name)}.mp4"
                start = time.process_time()
                variants[name](path)
                times[name].append(time.process_time() - start)
                sizes[name] = path.stat().st_size
    base_size = sizes["plain mp4 (index at the end)"]
    base_time = statistics.median(times["plain mp4 (index at the end)"])
    print(f"{'variant':36} {'bytes':>9} {'size':>7} {'CPU s':>7} {'CPU':>7}")
    for name in variants:
        cpu = statistics.median(times[name])
        size_ratio, cpu_ratio = sizes[name] / base_size, cpu / base_time
        print(f"{name:36} {sizes[name]:9d} {size_ratio:6.3f}x {cpu:7.3f} {cpu_ratio:6.3f}x")


if __name__ == "__main__":
    main()
