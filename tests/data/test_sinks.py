"""The H.264 writer and the stats writers: content, and never a half-written file."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from streamdeq.data import (
    CorruptVideoError,
    OutputError,
    StatsSchemaError,
    StatsWriter,
    VideoWriter,
    open_video,
    sinks,
)
from streamdeq.errors import SettingsError, StreamDEQError

from .clips import FPS, HEIGHT, WIDTH, gradient_frame, skip_if_root, truncate


def write_frames(writer: VideoWriter, count: int, width: int = WIDTH, height: int = HEIGHT) -> None:
    for index in range(count):
        writer.write(gradient_frame(index, width, height))


def probe(path: Path) -> tuple[str, int, int, str, int]:
    """(codec, width, height, pixel format, decoded frames) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.width, stream.height, stream.format.name, frames


def test_video_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, FPS, (WIDTH, HEIGHT), crf=0) as writer:
        write_frames(writer, 12)
    assert probe(path) == ("h264", WIDTH, HEIGHT, "yuv420p", 12)
    with open_video(path) as video:
        assert video.fps == pytest.approx(FPS)
        for frame in video:
            error = np.abs(frame.image.astype(int) - gradient_frame(frame.index)).mean()
            assert error < 4


def test_size_defaults_to_the_first_frame(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "out.mp4", FPS) as writer:
        write_frames(writer, 3)
    assert writer.size == (WIDTH, HEIGHT)
    assert probe(tmp_path / "out.mp4")[1:3] == (WIDTH, HEIGHT)


def test_no_final_file_until_finished(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, FPS, (WIDTH, HEIGHT))
    write_frames(writer, 4)
    assert not path.exists()
    assert writer.incomplete_path.exists() and writer.incomplete_path.parent == tmp_path
    assert writer.finish() == path
    assert path.exists() and not writer.incomplete_path.exists()


def test_ctrl_c_in_the_block_keeps_the_frames_done(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), VideoWriter(path, FPS, (WIDTH, HEIGHT)) as writer:
        for index in range(16):
            if index == 7:
                raise KeyboardInterrupt
            writer.write(gradient_frame(index))
    assert writer.frames_written == 7
    assert probe(path)[-1] == 7


def test_corrupt_input_mid_way_keeps_the_frames_done(tmp_path: Path, faststart_mp4: Path) -> None:
    truncate(faststart_mp4)
    path = tmp_path / "out.mp4"
    with (
        pytest.raises(CorruptVideoError) as caught,
        VideoWriter(path, FPS) as writer,
        open_video(faststart_mp4) as video,
    ):
        for frame in video:
            writer.write(frame.image)
    assert writer.frames_written == caught.value.frames_read > 0
    assert probe(path)[-1] == writer.frames_written


def test_finish_keeps_a_partial_run_after_any_error(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, FPS, (WIDTH, HEIGHT))
    try:
        write_frames(writer, 5)
        raise RuntimeError("model crashed")
    except RuntimeError:
        assert writer.finish() == path
    assert probe(path)[-1] == 5


def test_other_exceptions_escaping_the_block_leave_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, FPS, (WIDTH, HEIGHT)) as writer:
        write_frames(writer, 3)
        raise RuntimeError("model crashed")
    assert not path.exists() and not writer.incomplete_path.exists()


def test_abort_keeps_an_existing_target_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous run")
    writer = VideoWriter(path, FPS, (WIDTH, HEIGHT))
    write_frames(writer, 2)
    writer.abort()
    assert path.read_bytes() == b"previous run"
    assert not writer.incomplete_path.exists()


def test_finish_replaces_an_existing_target(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous run")
    with VideoWriter(path, FPS) as writer:
        write_frames(writer, 2)
    assert probe(path)[-1] == 2


def test_no_frames_makes_no_file(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", FPS, (WIDTH, HEIGHT))
    assert writer.finish() is None
    assert list(tmp_path.iterdir()) == []


def test_finish_is_idempotent_and_closes_for_writing(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", FPS)
    write_frames(writer, 2)
    assert writer.finish() == writer.finish() == tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="already finished"):
        writer.write(gradient_frame(0))


def test_odd_sizes_are_padded_to_even_with_the_edge(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, FPS, crf=0) as writer:
        write_frames(writer, 2, width=63, height=47)
    assert probe(path)[1:3] == (64, 48)
    with open_video(path) as video:
        image = next(iter(video)).image.astype(int)
    assert np.abs(image[:47, :63] - gradient_frame(0, 63, 47)).mean() < 4
    assert np.abs(image[:, 63] - image[:, 62]).mean() < 4  # the edge repeated, not black


def test_frames_of_another_size_are_cropped_or_padded(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, FPS, (WIDTH, HEIGHT)) as writer:
        writer.write(gradient_frame(0, WIDTH + 10, HEIGHT + 6))
        writer.write(gradient_frame(1, WIDTH - 10, HEIGHT - 6))
    with open_video(path) as video:
        frames = [frame.image for frame in video]
    assert [image.shape for image in frames] == [(HEIGHT, WIDTH, 3)] * 2
    assert frames[1][HEIGHT - 4 :, :].mean() < 8  # black padding at the bottom


def test_rejects_frames_that_are_not_rgb_uint8(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "out.mp4", FPS) as writer, pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((HEIGHT, WIDTH), dtype=np.uint8))


def test_missing_output_folder_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", FPS)


def test_output_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder"):
        VideoWriter(tmp_path, FPS)


def test_output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        StatsWriter(tmp_path / "file" / "stats.csv")


def test_unknown_video_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.mp4"):
        VideoWriter(tmp_path / "out.gif", FPS)
    assert list(tmp_path.iterdir()) == []


@skip_if_root
def test_read_only_folder_fails_at_open(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="ermission denied"):
            VideoWriter(tmp_path / "out.mp4", FPS)
    finally:
        tmp_path.chmod(0o755)


def test_bad_fps_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", 0)


def test_output_errors_are_streamdeq_and_os_errors() -> None:
    assert issubclass(OutputError, StreamDEQError) and issubclass(OutputError, OSError)


ROWS = [
    {"frame": 0, "iters": np.int64(26), "residual": 0.5, "shot_change": True},
    {"frame": 1, "iters": 4, "residual": torch.tensor(0.25), "shot_change": False},
]


def test_stats_csv_has_a_header_and_one_row_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    with StatsWriter(path) as stats:
        for row in ROWS:
            stats.write(row)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows == [
        {"frame": "0", "iters": "26", "residual": "0.5", "shot_change": "True"},
        {"frame": "1", "iters": "4", "residual": "0.25", "shot_change": "False"},
    ]


def test_stats_jsonl_has_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    with StatsWriter(path) as stats:
        for row in ROWS:
            stats.write(row)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"frame": 0, "iters": 26, "residual": 0.5, "shot_change": True},
        {"frame": 1, "iters": 4, "residual": 0.25, "shot_change": False},
    ]


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_stats_json_is_one_valid_array(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "stats.json"
    with StatsWriter(path) as stats:
        for index in range(rows):
            stats.write({"frame": index})
    assert json.loads(path.read_text()) == [{"frame": index} for index in range(rows)]


def test_stats_rows_are_on_disk_as_soon_as_written(tmp_path: Path) -> None:
    stats = StatsWriter(tmp_path / "stats.jsonl")
    stats.write({"frame": 0})
    assert stats.incomplete_path.read_text() == '{"frame": 0}\n'
    assert not stats.path.exists()
    stats.finish()
    assert stats.path.read_text() == '{"frame": 0}\n'


def test_stats_missing_keys_are_empty_and_extra_keys_rejected(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    with StatsWriter(path) as stats:
        stats.write({"frame": 0, "iters": 4})
        stats.write({"frame": 1})
        with pytest.raises(StatsSchemaError, match="surprise"):
            stats.write({"frame": 2, "surprise": 1})
    assert path.read_text().splitlines() == ["frame,iters", "0,4", "1,"]


def test_stats_declared_columns_allow_keys_that_come_later(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    with StatsWriter(path, columns=["frame", "reset"]) as stats:
        stats.write({"frame": 0})
        stats.write({"frame": 1, "reset": "divergence"})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"frame": 0, "reset": None},
        {"frame": 1, "reset": "divergence"},
    ]


def test_stats_non_finite_numbers_become_null_in_json(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    with StatsWriter(path) as stats:
        stats.write({"residual": float("nan"), "trace": np.array([1.0, np.inf])})
    assert json.loads(path.read_text()) == {"residual": None, "trace": [1.0, None]}


def test_stats_missing_values_are_empty_cells_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    with StatsWriter(path, columns=["frame", "reset", "shot_score", "residual"]) as stats:
        stats.write({"frame": 0, "reset": None, "shot_score": float("nan"), "residual": 0.5})
    assert path.read_text().splitlines() == ["frame,reset,shot_score,residual", "0,,,0.5"]


def test_stats_header_only_when_no_rows_but_columns_known(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    StatsWriter(path, columns=["frame", "iters"]).finish()
    assert path.read_text().splitlines() == ["frame,iters"]


def test_stats_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.csv"):
        StatsWriter(tmp_path / "stats.xlsx")


def _continuing_frame_row() -> dict:
    """A stream's stats row for a frame that continued the stream (no reset) before the shot
    detector could judge (NaN score): two missing values of two kinds."""
    from streamdeq.solvers import SolverStatus
    from streamdeq.stream import FrameInfo

    info = FrameInfo(
        index=1,
        iters=2,
        nfev=2,
        residual_before=0.1,
        residual_after=0.05,
        latency_ms=3.0,
        solve_ms=2.0,
        status=SolverStatus.MAX_ITER,
        reset=None,
        diverged=False,
        shot_change=False,
        shot_score=float("nan"),
    )
    return info.as_row()


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_stats_json_write_every_missing_value_as_null(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"stats{suffix}"
    with StatsWriter(path) as stats:
        stats.write(_continuing_frame_row())
    text = path.read_text()
    record = json.loads(text.splitlines()[0] if suffix == ".jsonl" else text)
    record = record if suffix == ".jsonl" else record[0]
    assert record["reset"] is None and record["shot_score"] is None


def test_stats_csv_keeps_an_empty_cell_for_no_reset(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    with StatsWriter(path) as stats:
        stats.write(_continuing_frame_row())
    with path.open(newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["reset"] == ""


# ----------------------------------------------------------------------------- abrupt ends

# Writes frames to a VideoWriter and rows to StatsWriters (one per path in argv[2:]), slowly,
# and prints "<frames written> <frames durable>" after each: the parent kills it part-way.
_SLOW_WRITER = """
import sys, time
import numpy as np
from streamdeq.data import StatsWriter, VideoWriter

flush_seconds, paths = float(sys.argv[1]), sys.argv[2:]
sinks = [
    VideoWriter(path, 25, (64, 48), flush_seconds=flush_seconds)
    if path.endswith(("mp4", "mov", "mkv"))
    else StatsWriter(path, flush_seconds=flush_seconds)
    for path in paths
]
for index in range(100_000):
    image = np.zeros((48, 64, 3), np.uint8)
    image[..., 0] = (np.arange(64) * 3 + index * 4) % 256
    image[..., 1] = np.random.default_rng(index).integers(0, 64, (48, 64))
    for sink in sinks:
        sink.write(image) if isinstance(sink, VideoWriter) else sink.write({"frame": index})
    durable = getattr(sinks[0], "frames_durable", index + 1)
    print(index + 1, durable, flush=True)
    time.sleep(0.02)
"""


def kill_after(paths: list[Path], until: Callable[[int, int], bool]) -> tuple[int, int]:
    """Run the slow writer on ``paths``, SIGKILL it once ``until(written, durable)``; returns
    the last (written, durable) it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, "0.3", *map(str, paths)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in child.stdout:
            written, durable = map(int, line.split())
            if until(written, durable):
                break
        else:
            pytest.fail(f"the writer ended by itself (exit code {child.wait()})")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    return written, durable


def decodable_frames(path: Path) -> int:
    """Frames decoded from the start up to the first damaged packet (a torn last fragment)."""
    frames = 0
    with av.open(str(path)) as container:
        try:
            for packet in container.demux(video=0):
                frames += len(packet.decode())
        except av.FFmpegError:
            pass
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_video_killed_hard_plays_up_to_its_last_flush(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    written, durable = kill_after([path], lambda written, durable: durable >= 20)
    assert not path.exists()
    # frames_durable: every frame before the last flushed keyframe (forced 0.3 s apart)
    assert durable <= decodable_frames(tmp_path / f"out.incomplete{suffix}") <= written + 1


def test_stats_killed_hard_keep_one_valid_row_per_frame_written(tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "stats.csv", tmp_path / "stats.jsonl"
    written, _ = kill_after([csv_path, jsonl_path], lambda written, durable: written >= 10)
    with (tmp_path / "stats.incomplete.csv").open(newline="") as file:
        csv_rows = [int(row["frame"]) for row in csv.DictReader(file)]
    lines = (tmp_path / "stats.incomplete.jsonl").read_text().splitlines()
    jsonl_rows = [json.loads(line)["frame"] for line in lines]
    for rows in (csv_rows, jsonl_rows):  # the child may have written one more before it died
        assert rows == list(range(len(rows))) and written <= len(rows) <= written + 1


def test_outputs_are_written_under_visible_incomplete_names(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", FPS)
    stats = StatsWriter(tmp_path / "stats.json")
    write_frames(writer, 2)
    stats.write({"frame": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.incomplete.mp4",
        "stats.incomplete.json",
    ]
    writer.finish(), stats.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "stats.json"]


def test_a_new_writer_replaces_an_incomplete_file_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "stats.incomplete.csv").write_text("frame\n0\n1\n")
    replacing = StatsWriter(tmp_path / "stats.csv")
    fresh = StatsWriter(tmp_path / "other.csv")
    assert replacing.replaced_incomplete and not fresh.replaced_incomplete
    assert (tmp_path / "stats.incomplete.csv").read_text() == ""


def test_a_keyframe_is_forced_after_flush_seconds_of_wall_time(tmp_path, monkeypatch) -> None:
    clock = iter(np.arange(0, 100, 0.1))  # each frame is written 0.1 s after the one before
    monkeypatch.setattr(sinks, "monotonic", lambda: next(clock))
    path = tmp_path / "out.mp4"
    with VideoWriter(path, FPS, (WIDTH, HEIGHT), flush_seconds=0.95) as writer:
        write_frames(writer, 45)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
    first = min(pts for pts, _ in packets)  # B-frames shift every pts by the same delay
    keyframes = sorted(round((pts - first) * stream.time_base * FPS) for pts, key in packets if key)
    assert keyframes == [0, 10, 20, 30, 40]


def test_a_flush_puts_the_fragment_before_the_keyframe_on_disk(tmp_path, monkeypatch) -> None:
    clock = iter(np.arange(0, 100, 0.1))
    monkeypatch.setattr(sinks, "monotonic", lambda: next(clock))
    writer = VideoWriter(tmp_path / "out.mp4", FPS, (WIDTH, HEIGHT), flush_seconds=0.95)
    write_frames(writer, 40)  # keyframes at 0, 10, 20, 30; the encoder holds the last ones
    assert writer.frames_durable in (10, 20, 30)
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(writer.incomplete_path.read_bytes())  # as a kill would leave it
    assert decodable_frames(copy) == writer.frames_durable
    writer.abort()


def test_a_finish_that_fails_keeps_the_incomplete_file(tmp_path, monkeypatch) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", FPS, (WIDTH, HEIGHT))
    write_frames(writer, 5)

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks.os, "replace", disk_full)
    with pytest.raises(OutputError, match="out.incomplete.mp4 keeps what was written"):
        writer.finish()
    assert probe(writer.incomplete_path)[-1] == 5
