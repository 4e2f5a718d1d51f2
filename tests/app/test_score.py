"""``streamdeq score``: a recorded run scored as an online system (streaming accuracy), with
offline accuracy beside it; one-line errors for inputs that do not fit together."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from streamdeq.app.cli import main
from streamdeq.app.run_options import RunOptions
from streamdeq.app.runner import run_video
from streamdeq.app.score import ScoreOptions, score_run
from streamdeq.tasks.detection.predictions import BoxesPredictions
from streamdeq.tasks.predictions import predictions_header
from streamdeq.tasks.segmentation.metric import SegmentationMetric
from streamdeq.tasks.segmentation.predictions import LabelMapPredictions

SIZE = (4, 6)  # (H, W) of the hand-built frames


pytestmark = pytest.mark.usefixtures("single_thread")


def write_stats(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def label_folder(folder: Path, labels: dict[int, np.ndarray]) -> Path:
    folder.mkdir()
    for index, label in labels.items():
        Image.fromarray(label.astype(np.uint8)).save(folder / f"{index:06d}.png")
    return folder


def hand_predictions(path: Path, labels: list[int], classes: int = 2) -> Path:
    """Frame k predicts class ``labels[k]`` everywhere, at 10 fps."""
    model = SimpleNamespace(config=SimpleNamespace(num_classes=classes))
    header = predictions_header("segmentation", num_classes=classes, fps=10.0, model="hand")
    writer = LabelMapPredictions().writer(model, path, header)
    for k, label in enumerate(labels):
        logits = torch.zeros(classes, *SIZE)
        logits[label] = 1.0
        writer.write(k, k / 10, SIZE, logits)
    writer.finish()
    return path


@pytest.fixture
def hand_run(tmp_path) -> SimpleNamespace:
    """Six frames at 10 fps, frame k predicting k % 2, each annotated k % 2 (so offline every
    frame is right), and steps of 250 ms: 2.5 frame intervals."""
    preds = hand_predictions(tmp_path / "preds", [k % 2 for k in range(6)])
    truth = {g: np.full(SIZE, g % 2) for g in range(6)}
    stats = write_stats(
        tmp_path / "stats.csv",
        [{"index": k, "timestamp": k / 10, "latency_ms": 250.0} for k in range(6)],
    )
    return SimpleNamespace(
        preds=preds, stats=stats, annotations=label_folder(tmp_path / "gt", truth)
    )


def paired(result: dict) -> list[int | None]:
    return [pair["input_index"] for pair in result["pairs"]]


def test_latencies_of_two_and_a_half_frames_pair_as_computed_by_hand(hand_run):
    # f_k = max(tau_k, f_(k-1)) + 0.25: 0.25, 0.5, 0.75, ...; frame g asks at g / 10
    result = score_run(ScoreOptions(hand_run.stats, hand_run.preds, hand_run.annotations))
    assert paired(result) == [None, None, None, 0, 0, 1]  # f_1 = 0.5 answers g = 5 (a tie)
    assert [p["finish_s"] for p in result["pairs"][3:]] == [0.25, 0.25, 0.5]
    streaming = result["streaming"]
    assert (streaming["misses"], streaming["frames"]) == (3, 6)
    assert streaming["lag_mean"] == pytest.approx(11 / 3)
    # class 0: TP 1 frame (g=4), FP 1 (g=3), FN 2 (misses) -> 1/4; class 1: TP 1 (g=5),
    # FN 2 (a miss, and g=3 answered 0) -> 1/3
    assert streaming["smiou"] == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert result["offline"]["miou"] == 1.0
    assert result["rule"]["clock"] == "simulated" and result["rule"]["eta"] == 0


def test_eta_minus_one_allows_one_frame_of_latency(hand_run):
    options = ScoreOptions(hand_run.stats, hand_run.preds, hand_run.annotations, eta=-1)
    assert paired(score_run(options)) == [None, None, 0, 0, 1, 1]


def test_a_live_runs_recorded_finish_times_are_used_as_they_are(hand_run, tmp_path):
    rows = [
        {"index": k, "timestamp": k / 10, "latency_ms": 900.0, "finish_s": k / 10 + 0.05}
        for k in range(6)
    ]
    stats = write_stats(tmp_path / "live.csv", rows)
    result = score_run(ScoreOptions(stats, hand_run.preds, hand_run.annotations))
    assert paired(result) == [None, 0, 1, 2, 3, 4]  # 50 ms late: the previous frame's answer
    assert result["rule"]["clock"] == "real"


def test_with_zero_latency_streaming_miou_is_the_offline_miou_exactly(
    tiny_seg_checkpoint, tmp_path
):
    source = tmp_path / "frames"
    source.mkdir()
    rng = np.random.default_rng(1)
    for index in range(4):
        image = rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(source / f"{index:03d}.png")
    logits = []
    options = RunOptions(
        str(source),
        checkpoint=tiny_seg_checkpoint,
        iters=1,
        device="cpu",
        stats=tmp_path / "stats.csv",
        predictions=tmp_path / "preds",
    )
    run_video(options, on_frame=lambda frame, result: logits.append(result.output))
    with (tmp_path / "stats.csv").open(newline="") as file:
        rows = [row | {"latency_ms": "0"} for row in csv.DictReader(file)]
    stats = write_stats(tmp_path / "zero.csv", rows)
    truth = {g: rng.integers(0, 19, size=(32, 64)) for g in (1, 3)}
    truth[3][:8] = 255  # ignored pixels
    offline = SegmentationMetric(19)
    for g, label in truth.items():
        offline.update(logits[g], label)
    gt = label_folder(tmp_path / "gt", truth)
    result = score_run(ScoreOptions(stats, tmp_path / "preds", gt))
    assert paired(result) == [1, 3]
    assert result["streaming"]["smiou"] == result["offline"]["miou"] == offline.compute()["miou"]


def test_detection_scores_against_a_manifest_with_misses_as_empty_predictions(tmp_path):
    header = predictions_header("detection", fps=10.0, model="hand")
    writer = BoxesPredictions().writer(None, tmp_path / "b.jsonl", header)
    box = {"boxes": np.array([[10.0, 10, 30, 30]]), "scores": np.array([0.9]), "labels": [1]}
    for k in range(3):
        writer.write(k, k / 10, (64, 64), box)
    writer.finish()
    manifest = {
        "sequences": ["seq"],
        "categories": [{"id": 1, "name": "car"}],
        "images": [
            {"id": g, "sid": 0, "fid": g, "name": f"{g}.jpg", "width": 64, "height": 64}
            for g in range(3)
        ],
        "annotations": [
            {"id": g, "image_id": g, "bbox": [10, 10, 20, 20], "category_id": 1} for g in range(3)
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(manifest))
    stats = write_stats(
        tmp_path / "stats.csv",
        [{"index": k, "timestamp": k / 10, "latency_ms": 150.0} for k in range(3)],
    )
    result = score_run(ScoreOptions(stats, tmp_path / "b.jsonl", tmp_path / "gt.json"))
    assert paired(result) == [None, None, 0]  # f_0 = 0.15, f_1 = 0.3
    assert result["offline"]["ap50"] == 1.0
    assert result["streaming"]["sap50"] < 1.0 and result["streaming"]["misses"] == 2


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["streamdeq", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as end:
        code = end.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_latency", "lack column(s) latency_ms"),
        ("more_frames", "not of the same run"),
        ("other_task", "holds segmentation ground truth"),
        ("no_annotations", "no such file or folder"),
        ("live_fps", "--fps cannot re-time a live run"),
        ("late_annotations", "none of the 1 annotated frames"),
        ("bad_eta", "--eta"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    hand_run, tmp_path, monkeypatch, capsys, change, message
):
    stats, preds, annotations = hand_run.stats, hand_run.preds, hand_run.annotations
    extra: list[str] = []
    rows = [{"index": k, "timestamp": k / 10, "latency_ms": 1.0} for k in range(6)]
    if change == "no_latency":
        stats = write_stats(tmp_path / "s.csv", [{"index": 0, "timestamp": 0.0}])
    elif change == "more_frames":
        stats = write_stats(tmp_path / "s.csv", rows + [dict(rows[0], index=k) for k in (6, 7)])
    elif change == "other_task":
        writer = BoxesPredictions().writer(
            None, tmp_path / "b.jsonl", predictions_header("detection")
        )
        for k in range(6):
            writer.write(k, k / 10, SIZE, {"boxes": [], "scores": [], "labels": []})
        writer.finish()
        preds = tmp_path / "b.jsonl"
    elif change == "no_annotations":
        annotations = tmp_path / "missing"
    elif change == "live_fps":
        stats = write_stats(tmp_path / "s.csv", [r | {"finish_s": 1.0} for r in rows])
        extra = ["--fps", "30"]
    elif change == "late_annotations":
        annotations = label_folder(tmp_path / "late", {40: np.zeros(SIZE)})
    elif change == "bad_eta":
        extra = ["--eta", "inf"]
    code, _, err = cli(
        monkeypatch, capsys, "score", stats, preds, "--annotations", annotations, *extra
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_generate_run_score_end_to_end(tiny_seg_checkpoint, tmp_path, monkeypatch, capsys):
    root = tmp_path / "set"
    code, _, err = cli(
        monkeypatch,
        capsys,
        "generate",
        root,
        "--clips",
        "2",
        "--frames",
        "4",
        "--height",
        "32",
        "--width",
        "64",
    )
    assert code == 0, err
    frames = tmp_path / "clip0"
    frames.mkdir()
    for path in sorted((root / "leftImg8bit_sequence" / "val").rglob("synthetic_000000_*.png")):
        shutil.copy(path, frames / path.name)
    stats, preds = tmp_path / "stats.csv", tmp_path / "preds"
    code, _, err = cli(
        monkeypatch,
        capsys,
        "run",
        frames,
        "--checkpoint",
        tiny_seg_checkpoint,
        "--iters",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--stats",
        stats,
        "--predictions",
        preds,
    )
    assert code == 0, err
    with stats.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["index"] for row in rows] == ["0", "1", "2", "3"]
    assert all(row["finish_s"] == "" for row in rows)  # a file: no wall-clock finish
    result_path = tmp_path / "score.json"
    code, out, err = cli(
        monkeypatch,
        capsys,
        "score",
        stats,
        preds,
        "--annotations",
        root,
        "--sequence",
        "synthetic_000000",
        "--out",
        result_path,
    )
    assert code == 0, err
    assert "streaming" in out and "offline" in out and "lag mean" in out
    result = json.loads(result_path.read_text())
    assert result["frames"]["scored"] == 1 and result["pairs"][0]["frame"] == 3
    assert result["inputs"]["annotations_kind"] == "cityscapes"
    assert 0.0 <= result["offline"]["miou"] <= 1.0
    assert result["measured_on"]["threads"] == 1
