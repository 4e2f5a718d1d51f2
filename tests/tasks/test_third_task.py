"""Adding a task is adding a folder: the toy brightness task (tests/tasks/toy_brightness), which
no shared module knows, runs through the engine, ``streamdeq run`` and Table 1."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import streamdeq
from streamdeq.experiments import Clip, table1
from streamdeq.models.zoo import MODELS
from streamdeq.tasks import TASKS, get_task

from ..data.clips import write_clip

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "tests.tasks.toy_brightness"


@pytest.fixture
def toy():
    """The toy task registered as a plugin would register it, and gone after the test."""
    with TASKS.restored(), MODELS.restored():
        module = importlib.import_module(PLUGIN)
        importlib.reload(module)  # registration runs on import; a second test imports again
        yield module


def _frames(count: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 24, 40, 3))
    drift = np.arange(count)[:, None, None, None] * 6
    return np.clip(base + drift, 0, 255).astype(np.uint8)


def test_the_toy_task_streams_through_the_engine(toy):
    torch.manual_seed(0)
    model = streamdeq.create_model("toy-brightness-tiny").eval()
    stream = streamdeq.StreamDEQ(model, iters=2)
    for frame in _frames():
        result = stream.step(frame)
    # dense output at 1/4 of the padded frame, cropped back to the frame by the default crop
    assert tuple(result.output.shape) == (1, 6, 10)
    assert result.info.iters == 2
    assert get_task("brightness").build_renderer(model).columns == ("mean_brightness",)


def test_table1_scores_the_toy_task_with_its_own_metric(toy):
    torch.manual_seed(0)
    model = streamdeq.create_model("toy-brightness-tiny").eval()
    frames = _frames(3)
    targets = {t: toy.brightness_of(frames[t]) for t in range(len(frames))}
    clips = [Clip("toy-0", frames, targets, task="brightness")]
    result = table1(model, clips, iters=[1, 2], non_streaming=False)
    assert [row["M"] for row in result.rows] == [None, 1, 2]
    for row in result.rows:
        assert 0.0 <= row["mae"] <= 1.0 and row["frames"] == 1  # the last frame, as the paper


def _plugin_site(root: Path) -> Path:
    """A folder holding an installed distribution's metadata whose entry point names the toy
    task: what ``pip install`` of a plugin package leaves on the path."""
    info = root / "toy_brightness_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-brightness-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[streamdeq.tasks]\nbrightness = {PLUGIN}\n")
    return root


def test_streamdeq_run_finds_the_toy_task_through_its_entry_point(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=3)
    site = _plugin_site(tmp_path / "site")
    paths = [str(site), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.pop("STREAMDEQ_PLUGINS", None)
    out, stats = tmp_path / "toy.mp4", tmp_path / "toy.csv"
    command = [sys.executable, "-m", "streamdeq", "run", str(clip), "--model"]
    command += ["toy-brightness-tiny", "--iters", "2", "--out", str(out), "--stats", str(stats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    with stats.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(0.0 <= float(r["mean_brightness"]) <= 1.0 for r in rows)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
