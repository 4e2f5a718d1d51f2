from __future__ import annotations

import csv
import sys

import pytest
import torch
from rich.console import Console

from streamdeq.app.cli import main
from streamdeq.app.demo import DemoSettings, run_demo
from streamdeq.data import open_video
from streamdeq.data.synthetic import SceneSettings
from streamdeq.experiments import MissingWeightsError

from ..experiments.conftest import tiny_model

SCENE = SceneSettings(height=64, width=128)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo") / "out"
    console = Console(record=True, width=120)
    settings = DemoSettings(
        clips=2, frames=3, figure_clips=2, video_clips=1, iters=(1, 2), streaming_clips=1
    )
    report = run_demo(out, model=tiny_model(), settings=settings, scene=SCENE, console=console)
    torch.set_num_threads(threads)
    return out, report, console.export_text()


def test_demo_prints_the_table1_comparison(demo):
    _, report, text = demo
    assert [row["scheme"] for row in report.table.rows[:3]] == [
        "baseline (N)",
        "StreamDEQ (Eq. 5)",
        "StreamDEQ (Eq. 5)",
    ]
    for heading in ("mIoU", "frames/s", "speed-up", "1.00x"):
        assert heading in text


def test_demo_writes_video_and_plots(demo):
    out, _, _ = demo
    names = {
        "overlay.mp4",
        "table1.csv",
        "table1.png",
        "fig3.csv",
        "fig3.png",
        "fig5.csv",
        "fig5.png",
    }
    assert names <= {p.name for p in out.iterdir()}
    with open_video(out / "overlay.mp4") as video:
        frames = [frame.image for frame in video]
    assert len(frames) == 3
    assert frames[0].shape == (256, 2 * 512, 3)  # StreamDEQ beside the baseline, enlarged 4x
    with open(out / "fig5.csv", newline="") as handle:
        offsets = {row["offset"] for row in csv.DictReader(handle)}
    assert {"1", "2", "3"} <= offsets


def test_missing_bundled_weights_is_an_error_not_a_random_model(tmp_path, monkeypatch):
    import streamdeq.models.zoo as zoo

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "no-weights")
    with pytest.raises(MissingWeightsError, match="mdeq-seg-tiny-synthetic"):
        run_demo(tmp_path / "out", console=Console(quiet=True))
    assert not (tmp_path / "out").exists()  # nothing written before the model loads


def test_demo_cli_error_is_one_line(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "x.safetensors"
    monkeypatch.setattr(sys, "argv", ["streamdeq", "demo", "--checkpoint", str(missing)])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"streamdeq: error: checkpoint file not found: {missing}"]


def test_demo_prints_the_streaming_table_and_writes_its_plot(demo):
    out, report, text = demo
    assert "Streaming mIoU at 17 frames/s" in text  # the generated clips' own rate
    rows = report.streaming.rows
    assert [(r["scheme"], r["scheduler"]) for r in rows] == [
        ("baseline N", "latest"),
        ("stream M=1", "latest"),
        ("stream M=2", "latest"),
        ("stream M=4", "latest"),
        ("fit", "fit"),
    ]
    assert {r["clock"] for r in rows} == {"sim"} and {r["fps"] for r in rows} == {17.0}
    assert rows[0]["profile"] == "measured"  # a model object has no bundled profile
    assert {"streaming.csv", "streaming.png"} <= {p.name for p in out.iterdir()}
