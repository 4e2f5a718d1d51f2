"""Reading files, image folders and streams; every input error a user can meet."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from streamdeq.data import (
    CorruptVideoError,
    InputNotFoundError,
    InputNotReadableError,
    NoImagesError,
    NotAVideoError,
    StreamOpenError,
    VideoError,
    open_video,
)
from streamdeq.errors import SettingsError, StreamDEQError

from .clips import FPS, FRAMES, HEIGHT, WIDTH, gradient_frame, skip_if_root, truncate, write_clip
from .clips import write_png as write_png_image
from .live import live_stream, mpegts_bytes


def test_mp4_metadata_is_known_at_open(mp4: Path) -> None:
    with open_video(mp4) as video:
        assert video.size == (WIDTH, HEIGHT)
        assert video.fps == pytest.approx(FPS)
        assert video.frame_count == FRAMES
        assert not video.is_live


def test_mp4_frames_come_back_in_order_as_encoded(mp4: Path) -> None:
    with open_video(mp4) as video:
        frames = list(video)
    assert [frame.index for frame in frames] == list(range(FRAMES))
    for frame in frames:
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        error = np.abs(frame.image.astype(int) - gradient_frame(frame.index)).mean()
        assert error < 4, f"frame {frame.index}: mean abs error {error:.1f}"  # yuv420p rounding


def test_frames_are_converted_to_rgb_by_one_converter_per_source(mp4: Path, monkeypatch) -> None:
    """PyAV's own ``to_ndarray(format=...)`` builds a new swscale context per frame (most of
    a small frame's decoding cost); a source keeps one converter, with the same pixels."""
    import av

    import streamdeq.data.video as video_module

    made, conversions = [], []
    real = video_module.VideoReformatter

    class CountingConverter:
        def __init__(self) -> None:
            made.append(self)
            self.converter = real()

        def reformat(self, frame, *args, **kwargs):
            conversions.append(frame)
            return self.converter.reformat(frame, *args, **kwargs)

    monkeypatch.setattr(video_module, "VideoReformatter", CountingConverter)
    with open_video(mp4) as video:
        frames = list(video)
    assert len(made) == 1 and len(conversions) == FRAMES
    with av.open(str(mp4)) as container:
        expected = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected, strict=True))


def test_timestamps_are_seconds_from_the_first_frame(mp4: Path) -> None:
    with open_video(mp4) as video:
        times = [frame.timestamp for frame in video]
    np.testing.assert_allclose(times, np.arange(FRAMES) / FPS, atol=1e-6)


def test_iteration_is_lazy(mp4: Path) -> None:
    with open_video(mp4) as video:
        frames = iter(video)
        first = next(frames)
        assert first.index == 0
        assert next(frames).index == 1


def test_max_frames_stops_reading_early(mp4: Path) -> None:
    with open_video(mp4, max_frames=5) as video:
        assert video.frame_count == 5
        assert [frame.index for frame in video] == [0, 1, 2, 3, 4]


def test_max_frames_beyond_the_end_reads_everything(mp4: Path) -> None:
    with open_video(mp4, max_frames=100) as video:
        assert video.frame_count == FRAMES
        assert len(list(video)) == FRAMES


def test_max_frames_must_be_positive(mp4: Path) -> None:
    with pytest.raises(SettingsError, match="max_frames"):
        open_video(mp4, max_frames=0)


def test_iterating_again_starts_over(mp4: Path) -> None:
    with open_video(mp4) as video:
        assert len(list(video)) == FRAMES
        assert len(list(video)) == FRAMES


def test_close_ends_a_running_iteration(mp4: Path) -> None:
    video = open_video(mp4)
    frames = iter(video)
    next(frames)
    video.close()
    assert list(frames) == []


@pytest.mark.parametrize(("name", "codec"), [("clip.mkv", "libx264"), ("clip.avi", "mpeg4")])
def test_other_containers_and_codecs(tmp_path: Path, name: str, codec: str) -> None:
    path = write_clip(tmp_path / name, codec=codec)
    with open_video(path) as video:
        frames = list(video)
    assert len(frames) == FRAMES
    assert frames[-1].image.shape == (HEIGHT, WIDTH, 3)


def test_accepts_file_urls(mp4: Path) -> None:
    with open_video(f"file://{mp4}") as video:
        assert video.frame_count == FRAMES


def test_image_folder_is_read_in_natural_name_order(tmp_path: Path) -> None:
    for index in (0, 1, 2, 10):  # name order would put frame10 before frame2
        write_png_image(tmp_path / f"frame{index}.png", gradient_frame(index))
    write_png_image(tmp_path / ".hidden.png", gradient_frame(99))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_video(tmp_path) as video:
        assert video.size == (WIDTH, HEIGHT)
        assert video.frame_count == 4
        images = [frame.image for frame in video]
    for image, index in zip(images, (0, 1, 2, 10)):
        np.testing.assert_array_equal(image, gradient_frame(index))  # png is lossless


def test_image_folder_timestamps_follow_the_given_fps(tmp_path: Path) -> None:
    for index in range(3):
        write_png_image(tmp_path / f"{index:03d}.png", gradient_frame(index))
    with open_video(tmp_path, fps=10) as video:
        assert video.fps == 10
        assert [frame.timestamp for frame in video] == pytest.approx([0.0, 0.1, 0.2])


def test_image_folder_honours_max_frames(tmp_path: Path) -> None:
    for index in range(5):
        write_png_image(tmp_path / f"{index:03d}.png", gradient_frame(index))
    with open_video(tmp_path, max_frames=2) as video:
        assert video.frame_count == 2
        assert len(list(video)) == 2


def test_single_image_is_a_one_frame_video(tmp_path: Path) -> None:
    path = write_png_image(tmp_path / "still.png", gradient_frame(3))
    with open_video(path) as video:
        frames = list(video)
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0].image, gradient_frame(3))


def test_missing_input_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(InputNotFoundError, match="nope.mp4"):
        open_video(path)


@skip_if_root
def test_unreadable_input_says_permission_denied(mp4: Path) -> None:
    mp4.chmod(0)
    try:
        with pytest.raises(InputNotReadableError, match="permission denied"):
            open_video(mp4)
    finally:
        mp4.chmod(0o644)


def test_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "fake.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    with pytest.raises(NotAVideoError, match="fake.mp4 is not a video"):
        open_video(path)


def test_empty_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(NotAVideoError):
        open_video(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(np.zeros(800, dtype=np.int16).tobytes())
    with pytest.raises(NotAVideoError, match="no video stream"):
        open_video(path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(NoImagesError, match=str(tmp_path)):
        open_video(tmp_path)


def test_truncated_mp4_fails_where_the_data_ends(faststart_mp4: Path) -> None:
    truncate(faststart_mp4)
    received = []
    with (
        pytest.raises(CorruptVideoError, match="truncated") as caught,
        open_video(faststart_mp4) as video,
    ):
        received.extend(frame.index for frame in video)
    assert caught.value.frames_read == len(received) < FRAMES
    assert received == list(range(len(received)))
    assert f"after {len(received)} good frames" in str(caught.value)


def test_truncated_mp4_without_its_index_fails_at_open(mp4: Path) -> None:
    truncate(mp4)  # libx264 mp4s keep the index at the end: it is cut off
    with pytest.raises(CorruptVideoError, match="truncated or damaged") as caught:
        open_video(mp4)
    assert caught.value.frames_read == 0


def test_truncated_mkv_is_caught_by_its_declared_duration(tmp_path: Path) -> None:
    path = truncate(write_clip(tmp_path / "clip.mkv", frames=100))
    received = 0
    with pytest.raises(CorruptVideoError, match="declares") as caught:
        for _ in open_video(path):
            received += 1
    assert caught.value.frames_read == received < 100


def test_strict_stops_at_a_damaged_image_in_a_folder_and_reports_the_file(tmp_path: Path) -> None:
    for index in range(3):
        write_png_image(tmp_path / f"{index:03d}.png", gradient_frame(index))
    (tmp_path / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CorruptVideoError, match="003.png") as caught:
        for _ in open_video(tmp_path, strict=True):
            pass
    assert caught.value.frames_read == 3


def test_unreachable_stream_fails_fast_and_hides_the_password() -> None:
    url = "rtsp://admin:hunter2@127.0.0.1:1/live"  # port 1: refused at once, no network needed
    with pytest.raises(StreamOpenError, match="127.0.0.1") as caught:
        open_video(url, timeout=2)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (InputNotFoundError, FileNotFoundError),
        (InputNotReadableError, PermissionError),
        (NotAVideoError, ValueError),
        (NoImagesError, ValueError),
        (CorruptVideoError, ValueError),
        (StreamOpenError, ConnectionError),
    ],
)
def test_errors_are_streamdeq_errors_and_builtin_ones(error: type, builtin: type) -> None:
    assert issubclass(error, VideoError) and issubclass(error, StreamDEQError)
    assert issubclass(error, builtin)


def test_a_live_stream_is_read_frame_by_frame_as_it_arrives() -> None:
    frames = [gradient_frame(index) for index in range(FRAMES)]
    with live_stream(mpegts_bytes(frames, FPS)) as url:
        source = open_video(url, timeout=10)
        assert source.is_live and (source.width, source.height) == (WIDTH, HEIGHT)
        received = list(source)
    assert [frame.index for frame in received] == list(range(FRAMES))
    assert [frame.timestamp for frame in received] == pytest.approx(
        [index / FPS for index in range(FRAMES)]
    )
    for sent, got in zip(frames, received, strict=True):  # crf 0: only colour conversion
        assert np.abs(got.image.astype(int) - sent).mean() < 3


def test_a_live_stream_that_goes_silent_stops_after_the_timeout_with_the_frames_read() -> None:
    frames = [gradient_frame(index) for index in range(40)]
    payload = mpegts_bytes(frames, FPS)
    with live_stream(payload, stall_after=len(payload) // 2) as url:
        source = open_video(url, timeout=1)
        received = 0
        with pytest.raises(CorruptVideoError, match="nothing arrived for 1 s") as caught:
            for _ in source:
                received += 1
    assert caught.value.frames_read == received and 0 < received < 40
    assert "stream broke off" in str(caught.value)


def test_a_live_stream_takes_ffmpeg_options_such_as_a_smaller_probesize(monkeypatch) -> None:
    # FFmpeg's MPEG-TS demuxer holds a seek-back buffer of `probesize` bytes per live input
    # (5 MB by default, filled as the stream arrives: see ContainerSource); a caller short of
    # memory bounds it with this option, which must reach FFmpeg, the default left alone.
    import av

    from streamdeq.data import video

    seen: list[dict] = []
    real_open = av.open

    def spy(target, *args, **kwargs):
        if str(target).startswith("tcp://"):  # not the encoder's own av.open
            seen.append(dict(kwargs.get("options") or {}))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(video.av, "open", spy)
    frames = [gradient_frame(index) for index in range(10)]
    with (
        live_stream(mpegts_bytes(frames, FPS)) as url,
        open_video(url, timeout=10, options={"probesize": "100000"}) as source,
    ):
        assert (source.width, source.height) == (WIDTH, HEIGHT)
        assert len(list(source)) == 10
    with live_stream(mpegts_bytes(frames, FPS)) as url:
        open_video(url, timeout=10).close()
    assert seen == [{"probesize": "100000"}, {}]
