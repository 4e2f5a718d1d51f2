"""Shared by the service core's tests: the bundled model (small frames keep it fast), sources
written into a temporary folder, and waiting on a running service without fixed sleeps."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import torch

from streamdeq.models.resolve import resolve_model
from streamdeq.serve import Service, SourceOptions
from streamdeq.stream import StreamSettings

from ..data.clips import gradient_frame, write_clip, write_png

#: The most any wait of these tests lasts: only a broken service reaches it.
PATIENCE_S = 30.0


@functools.cache
def bundled_model():
    """The bundled segmentation model, loaded once per session."""
    torch.set_num_threads(1)  # two lanes and the test share two cores
    return resolve_model("mdeq-seg-tiny-synthetic").model


def make_service(model, tmp_path: Path | None = None, **kwargs) -> Service:
    """A service on frames at their own size (no resize to the weights' 128x256)."""
    kwargs.setdefault("source_options", SourceOptions(timeout=2.0, folder_fps=25.0))
    kwargs.setdefault("stream_base", StreamSettings())
    if tmp_path is not None:
        kwargs.setdefault("state_file", tmp_path / "streams.state.json")
    return Service(model, **kwargs)


def clip_file(folder: Path, frames: int = 12, name: str = "clip.mp4") -> Path:
    return write_clip(folder / name, frames=frames, width=64, height=48)


def image_folder(folder: Path, frames: int = 6) -> Path:
    folder.mkdir()
    for index in range(frames):
        write_png(folder / f"{index:03d}.png", gradient_frame(index, 64, 48))
    return folder


def wait_for(condition: Callable[[], object], what: str, timeout: float = PATIENCE_S):
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
