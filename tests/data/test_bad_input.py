"""Bad input inside a readable source: skipped, counted and marked on the next frame, not fatal
(unless ``strict``); live streams that break off come back with ``reconnect``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamdeq.data import CorruptVideoError, open_video

from .clips import FPS, gradient_frame, write_clip
from .clips import write_png as write_png_image
from .live import Silence, live_server, mpegts_bytes

LIVE_FRAMES = 40


def garbage(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def folder_with_a_damaged_image(folder: Path, frames: int = 5, damaged: int = 2) -> Path:
    for index in range(frames):
        write_png_image(folder / f"{index:03d}.png", gradient_frame(index))
    (folder / f"{damaged:03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + garbage(200))
    return folder


def overwrite_middle(path: Path, start: float = 0.45, stop: float = 0.55) -> Path:
    """Garbage over [start, stop) of the file's bytes: packets damaged, the index intact."""
    data = bytearray(path.read_bytes())
    begin, end = int(len(data) * start), int(len(data) * stop)
    data[begin:end] = garbage(end - begin)
    path.write_bytes(bytes(data))
    return path


def live_payload() -> bytes:
    return mpegts_bytes([gradient_frame(index) for index in range(LIVE_FRAMES)], FPS)


# ----------------------------------------------------------------------------- image folders


def test_a_damaged_image_is_skipped_and_marked_on_the_next_frame(tmp_path: Path) -> None:
    with open_video(folder_with_a_damaged_image(tmp_path)) as video:
        frames = list(video)
        assert (video.dropped, video.decode_errors) == (1, 1)
    assert [frame.index for frame in frames] == [0, 1, 3, 4]  # places in the folder
    assert [frame.dropped_before for frame in frames] == [0, 0, 1, 0]
    assert [frame.timestamp for frame in frames] == pytest.approx([0, 0.04, 0.12, 0.16])


def test_a_folder_whose_first_images_are_damaged_starts_at_the_first_good_one(
    tmp_path: Path,
) -> None:
    with open_video(folder_with_a_damaged_image(tmp_path, frames=3, damaged=0)) as video:
        assert video.size == (64, 48)
        assert [(frame.index, frame.dropped_before) for frame in video] == [(1, 1), (2, 0)]


def test_a_folder_with_no_decodable_image_fails_at_open(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(garbage(100, seed=index))
    with pytest.raises(CorruptVideoError, match="none of its 3 images can be decoded"):
        open_video(tmp_path)


def test_max_frames_counts_the_frames_handed_out(tmp_path: Path) -> None:
    with open_video(folder_with_a_damaged_image(tmp_path), max_frames=3) as video:
        assert [frame.index for frame in video] == [0, 1, 3]


# ----------------------------------------------------------------------------- video files


def test_damaged_packets_in_a_video_are_dropped_and_counted(tmp_path: Path) -> None:
    path = overwrite_middle(write_clip(tmp_path / "clip.mp4", frames=40))
    with open_video(path) as video:
        frames = list(video)
        dropped, rejected = video.dropped, video.decode_errors
    assert rejected > 0 and dropped >= rejected  # what the decoder reports, at least
    assert len(frames) + dropped == 40  # every place in the file accounted for
    assert sum(frame.dropped_before for frame in frames) == dropped
    assert [frame.index for frame in frames] == sorted({frame.index for frame in frames})


def test_strict_stops_at_the_first_damaged_packet(tmp_path: Path) -> None:
    path = overwrite_middle(write_clip(tmp_path / "clip.mp4", frames=40))
    received = 0
    with pytest.raises(CorruptVideoError, match="truncated or damaged") as caught:
        for _ in open_video(path, strict=True):
            received += 1
    assert caught.value.frames_read == received < 40


def test_a_video_with_no_decodable_frame_is_an_error(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", frames=20)  # libx264 mp4: mdat, then the index
    data = bytearray(path.read_bytes())
    begin, end = data.index(b"mdat") + 4, data.index(b"moov") - 4
    data[begin:end] = garbage(end - begin)
    path.write_bytes(bytes(data))
    with (
        pytest.raises(CorruptVideoError, match="no frame could be decoded") as caught,
        open_video(path) as video,
    ):
        list(video)
    assert caught.value.frames_read == 0


# ----------------------------------------------------------------------------- live streams


def test_garbage_in_a_live_stream_costs_only_the_frames_it_hit() -> None:
    payload = live_payload()
    half = len(payload) // 2
    with live_server([[payload[:half], garbage(3000), payload[half + 3000 :]]]) as url:
        video = open_video(url, timeout=5)
        frames = list(video)
    assert 0 < video.dropped < 10 and len(frames) + video.dropped == LIVE_FRAMES
    assert frames[-1].index == LIVE_FRAMES - 1  # the places after the gap are kept


def test_a_stall_shorter_than_the_timeout_is_waited_out() -> None:
    payload = live_payload()
    half = len(payload) // 2
    with live_server([[payload[:half], Silence(1.0), payload[half:]]]) as url:
        video = open_video(url, timeout=3)
        frames = list(video)
    assert len(frames) == LIVE_FRAMES and video.dropped == 0


def test_a_server_that_comes_back_is_reconnected_and_the_frames_go_on() -> None:
    payload = live_payload()
    with live_server([[payload[: len(payload) // 2]], [payload]], down_s=0.8) as url:
        video = open_video(url, timeout=3, reconnect=1.5)
        frames = list(video)
    assert video.reconnects == 1
    restart = next(number for number, frame in enumerate(frames) if frame.reconnected)
    assert restart > 0 and len(frames) == restart + LIVE_FRAMES
    assert [frame.index for frame in frames] == list(range(len(frames)))
    timestamps = [frame.timestamp for frame in frames]
    assert timestamps == sorted(timestamps)  # one timeline across connections


def test_without_reconnect_the_end_of_the_connection_ends_the_stream() -> None:
    payload = live_payload()
    with live_server([[payload[: len(payload) // 2]], [payload]]) as url:
        video = open_video(url, timeout=3)
        frames = list(video)
    assert 0 < len(frames) < LIVE_FRAMES and video.reconnects == 0


def test_a_server_that_never_comes_back_ends_the_stream_after_the_reconnect_time() -> None:
    payload = live_payload()
    with live_server([[payload[: len(payload) // 2]]]) as url:
        video = open_video(url, timeout=3, reconnect=1.0)
        frames = list(video)  # ends quietly, as a broadcast that ended
    assert 0 < len(frames) < LIVE_FRAMES and video.reconnects == 0
