"""``streamdeq run`` killed with SIGKILL mid-run (as by the OOM killer): no handler runs, no
file is renamed, yet what it wrote opens: the video up to its last fragment, every stats row."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from ..data.clips import write_clip

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

STARTUP_SECONDS = 120  # importing torch and loading the model, on a busy machine


def wait_for_a_fragment(process: subprocess.Popen, video: Path) -> None:
    """Until the incomplete video holds a whole fragment (a ``moof`` box is only written with
    its frames), which takes the writer's 2 s of wall time plus the encoder's delay."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if video.is_file() and b"moof" in video.read_bytes():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before a fragment was written")
        time.sleep(0.05)
    pytest.fail(f"no fragment in {video} after {STARTUP_SECONDS} s")


def test_a_run_killed_hard_leaves_incomplete_outputs_that_open(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "clip.mp4", 60)
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    command = [sys.executable, "-m", "streamdeq", "run", str(source), "--threads", "1"]
    command += ["--mode", "baseline", "--out", str(out), "--stats", str(stats)]  # slow: N iters
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_a_fragment(process, tmp_path / "out.incomplete.mp4")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not out.exists() and not stats.exists()
    with (tmp_path / "stats.incomplete.csv").open(newline="") as file:
        indices = [int(row["index"]) for row in csv.DictReader(file)]
    assert indices == list(range(len(indices))) and 0 < len(indices) < 60
    with av.open(str(tmp_path / "out.incomplete.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert 0 < len(frames) <= len(indices)
    assert frames[0].shape == (48, 64, 3)
