"""Fixtures: tiny clips written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from .clips import write_clip


@pytest.fixture
def mp4(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


@pytest.fixture
def faststart_mp4(tmp_path: Path) -> Path:
    """An mp4 with its index at the front, as streamed files and our writer's output have."""
    return write_clip(tmp_path / "front.mp4", container_options={"movflags": "+faststart"})
