"""``streamdeq run`` on bad input: undecodable frames are dropped, counted in the summary and
marked in the stats, and the run goes on (exit 0); ``--strict`` stops at the first (exit 1);
an input with nothing decodable is one line and exit 2; ``--reconnect`` carries a live stream
over a server restart in one set of outputs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from ..data.clips import gradient_frame, write_clip
from ..data.live import live_server, mpegts_bytes
from ..data.test_bad_input import folder_with_a_damaged_image, garbage, overwrite_middle
from ..data.test_hardware import needs_no_cuda

LIVE_FRAMES, FPS = 30, 25


@pytest.fixture(scope="module")
def checkpoint(tiny_seg_checkpoint) -> Path:
    """The tiny segmentation model of tests/app/conftest.py."""
    return tiny_seg_checkpoint


def cli(checkpoint: Path, *args: str) -> subprocess.CompletedProcess:
    model = ("--checkpoint", str(checkpoint), "--iters", "1", "--device", "cpu", "--threads", "1")
    return subprocess.run(
        [sys.executable, "-m", "streamdeq", "run", *args, *model],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_damaged_image_is_dropped_and_the_run_goes_on(checkpoint, tmp_path):
    folder, stats = tmp_path / "frames", tmp_path / "stats.csv"
    folder.mkdir()
    folder_with_a_damaged_image(folder, frames=5, damaged=2)
    done = cli(checkpoint, str(folder), "--stats", str(stats), "--out", str(tmp_path / "o.mp4"))
    assert done.returncode == 0, done.stderr
    assert "1 frames dropped" in done.stdout
    rows = read_csv(stats)
    assert [row["dropped_before"] for row in rows] == ["0", "0", "1", "0"]
    assert [row["timestamp"] for row in rows] == ["0.0", "0.04", "0.12", "0.16"]
    assert [row["reset"] for row in rows] == ["first_frame", "", "", ""]  # the state carries on
    assert frame_count(tmp_path / "o.mp4") == 4


def test_strict_stops_at_the_damaged_image_with_the_frames_before_it(checkpoint, tmp_path):
    folder, stats = tmp_path / "frames", tmp_path / "stats.csv"
    folder.mkdir()
    folder_with_a_damaged_image(folder, frames=5, damaged=2)
    done = cli(checkpoint, str(folder), "--strict", "--stats", str(stats))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "002.png" in lines[0] and "Traceback" not in done.stderr
    assert len(read_csv(stats)) == 2


def test_a_video_with_damaged_packets_runs_to_the_end_with_the_gaps_counted(checkpoint, tmp_path):
    source = overwrite_middle(write_clip(tmp_path / "clip.mp4", frames=40))
    stats = tmp_path / "stats.csv"
    done = cli(checkpoint, str(source), "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    rows = read_csv(stats)
    dropped = sum(int(row["dropped_before"]) for row in rows)
    assert dropped > 0 and len(rows) + dropped == 40
    assert f"{dropped} frames dropped" in done.stdout


@pytest.mark.parametrize("kind", ["folder", "video"])
def test_an_input_with_no_decodable_frame_is_one_line_and_exit_2(checkpoint, tmp_path, kind):
    if kind == "folder":
        source = tmp_path / "frames"
        source.mkdir()
        for index in range(3):
            (source / f"{index}.png").write_bytes(garbage(100, seed=index))
    else:
        source = write_clip(tmp_path / "clip.mp4", frames=10)
        data = bytearray(source.read_bytes())
        begin, end = data.index(b"mdat") + 4, data.index(b"moov") - 4
        data[begin:end] = garbage(end - begin)
        source.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    done = cli(checkpoint, str(source), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamdeq: error:"), done.stderr
    assert not out.exists()


def test_reconnect_carries_a_live_stream_over_a_server_restart_in_one_file(checkpoint, tmp_path):
    payload = mpegts_bytes([gradient_frame(index) for index in range(LIVE_FRAMES)], FPS)
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    with live_server([[payload[: len(payload) // 2]], [payload]], down_s=0.8) as url:
        done = cli(checkpoint, url, "--reconnect", "1.5", "--timeout", "3",
                   "--out", str(out), "--stats", str(stats))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = read_csv(stats)
    resets = [row["reset"] for row in rows]
    assert resets.count("reconnect") == 1 and resets[0] == "first_frame"
    restart = resets.index("reconnect")
    assert len(rows) == restart + LIVE_FRAMES == frame_count(out)
    assert "1 reconnects" in done.stdout


def test_a_stream_that_never_comes_back_ends_as_a_broadcast_that_ended(checkpoint, tmp_path):
    payload = mpegts_bytes([gradient_frame(index) for index in range(LIVE_FRAMES)], FPS)
    stats = tmp_path / "stats.csv"
    with live_server([[payload[: len(payload) // 2]]]) as url:
        done = cli(checkpoint, url, "--reconnect", "1", "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    assert 0 < len(read_csv(stats)) < LIVE_FRAMES


@needs_no_cuda
def test_hwaccel_without_the_gpu_decoder_is_one_line_and_nothing_written(checkpoint, tmp_path):
    clip, out = write_clip(tmp_path / "clip.mp4"), tmp_path / "out.mp4"
    done = cli(checkpoint, str(clip), "--hwaccel", "cuda", "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot use the cuda hardware decoder" in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("value", ["nvdec", "cuda:x"])
def test_an_unknown_hwaccel_is_one_line(checkpoint, tmp_path, value):
    done = cli(checkpoint, str(write_clip(tmp_path / "clip.mp4")), "--hwaccel", value)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"streamdeq: error: unknown hardware decoder {value!r}; use cuda (NVIDIA's NVDEC, on "
        "the model's GPU) or cuda:N (GPU number N)"
    )
