"""Decoding on the CPU against a hardware decoder (``--hwaccel``): speed, CPU time, same pixels.

For each size, a generated H.264 clip (moving gradients and noise, so that the decoder has work)
is decoded through :func:`streamdeq.open_video` to RGB frames, once on the CPU and once with
``--hwaccel`` (default cuda). Per way: frames/s of one reader, CPU seconds per frame of this
process (what a camera costs the host's cores), the CPU ms a frame of decoding alone, without
the conversion to RGB, and the layout FFmpeg hands frames over in, which says whether the
device really decoded (NV12 from NVDEC; a codec the device lacks falls back to the CPU's
yuv420p). Then the largest pixel difference between the two ways' frames: decoding H.264 is
exact, so anything but 0 comes from the conversion to RGB (NV12 from the device, YUV 4:2:0
planar from the CPU).

    python benchmarks/hwdecode.py --sizes 128x256,1080x1920 --frames 240 --hwaccel cuda
    python benchmarks/hwdecode.py --hwaccel none   # the CPU's cost alone
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamdeq.data import HardwareDecoding, HardwareDecodingError, open_video


def write_clip(path: Path, height: int, width: int, count: int, fps: float = 30.0) -> None:
    rng = np.random.default_rng(0)
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.options = {"preset": "veryfast", "g": "60"}
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        for t in range(count):
            image = np.empty((height, width, 3), np.uint8)
            image[..., 0] = (cols + 4 * t) % 256
            image[..., 1] = (rows * 2 + 3 * t) % 256
            image[..., 2] = ((rows + cols) // 2 + t) % 256
            image[::16, ::16] = rng.integers(0, 256, image[::16, ::16].shape, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def decode(path: Path, hwaccel: HardwareDecoding | None, keep: int) -> dict:
    """Every frame of ``path`` to RGB; the first ``keep`` frames kept for comparison."""
    kept: list[np.ndarray] = []
    wall, cpu = time.perf_counter(), time.process_time()
    with open_video(path, hwaccel=hwaccel) as video:
        count = 0
        for frame in video:
            if count < keep:
                kept.append(frame.image.copy())
            count += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "frames": count,
        "fps": round(count / wall, 1),
        "host_ms_per_frame": round(1000 * cpu / max(count, 1), 3),
        "host_ms_decode_only": decode_only_ms(path, hwaccel),
        "frame_format": frame_format(path, hwaccel),
        "kept": kept,
    }


def decode_only_ms(path: Path, hwaccel: HardwareDecoding | None) -> float:
    """CPU ms a frame to decode without the conversion to RGB (PyAV directly, the same
    threading as ``open_video`` gives a file): the part a hardware decoder can take over."""
    cpu = time.process_time()
    with av.open(str(path), hwaccel=None if hwaccel is None else hwaccel.hwaccel()) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        count = sum(1 for _ in container.decode(stream))
    return round(1000 * (time.process_time() - cpu) / max(count, 1), 3)


def frame_format(path: Path, hwaccel: HardwareDecoding | None) -> str:
    """The layout FFmpeg hands the first frame over in: a device's (NV12 from NVDEC) or the
    software decoder's (yuv420p), which tells whether the device really decoded."""
    with av.open(str(path), hwaccel=None if hwaccel is None else hwaccel.hwaccel()) as container:
        return next(container.decode(video=0)).format.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128x256,1080x1920", help="HxW, comma-separated")
    parser.add_argument("--frames", type=int, default=240, help="frames per clip")
    parser.add_argument(
        "--hwaccel",
        default="cuda",
        help="the hardware decoder (--hwaccel); none: the CPU's decoding alone",
    )
    parser.add_argument("--compare", type=int, default=30, help="frames compared pixel by pixel")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    hardware = None
    if args.hwaccel != "none":
        try:
            hardware = HardwareDecoding.parse(args.hwaccel)
            hardware.check()
        except HardwareDecodingError as error:
            sys.exit(f"hwdecode: {error}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            height, width = (int(v) for v in size.lower().split("x"))
            path = Path(folder) / f"clip_{height}x{width}.mp4"
            write_clip(path, height, width, args.frames)
            ways = {"cpu": decode(path, None, args.compare)}
            if hardware is not None:
                ways["hw"] = decode(path, hardware, args.compare)
            row = {
                "size": size,
                "frames": args.frames,
                "mbit_per_s": round(path.stat().st_size * 8 * 30 / args.frames / 1e6, 2),
                "hwaccel": str(hardware or "none"),
            }
            if hardware is not None:
                pairs = zip(ways["cpu"]["kept"], ways["hw"]["kept"])
                diffs = [int(np.abs(a.astype(np.int16) - b).max()) for a, b in pairs]
                row["max_pixel_diff"] = max(diffs, default=None)
            for name, result in ways.items():
                result.pop("kept")
                row |= {f"{name}_{key}": value for key, value in result.items()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
