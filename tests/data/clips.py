"""Tiny clips written by the tests themselves with PyAV (independently of our writer)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 16, 25


def gradient_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(H, W, 3) uint8: smooth gradients that move with ``index`` (kind to lossy codecs)."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (np.arange(width) * 3 + index * 4) % 256
    image[..., 1] = (np.arange(height)[:, None] * 4) % 256
    image[..., 2] = (60 + 8 * index) % 256
    return image


def write_clip(
    path: Path,
    frames: int = FRAMES,
    *,
    codec: str = "libx264",
    container_options: dict[str, str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Path:
    """Encode ``frames`` gradient frames at FPS; libx264 near-lossless (crf 0)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        options = {"crf": "0"} if codec == "libx264" else {}
        stream = container.add_stream(codec, rate=Fraction(FPS), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(gradient_frame(index, width, height), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_png(path: Path, image: np.ndarray) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png")
        stream.height, stream.width = image.shape[:2]
        stream.pix_fmt = "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode(None))
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


skip_if_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions"
)
