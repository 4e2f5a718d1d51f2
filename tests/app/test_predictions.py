"""``streamdeq run --predictions``: the model's per-frame outputs, written as the run goes under
the input index of each frame, readable as soon as they are written (a killed run's too)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from streamdeq.app.run_options import RunOptions
from streamdeq.app.runner import run_video
from streamdeq.app.score import read_predictions
from streamdeq.data import OutputError
from streamdeq.errors import SettingsError
from streamdeq.tasks.detection.predictions import BoxesPredictions
from streamdeq.tasks.predictions import PREDICTIONS_FORMAT, PredictionsError, predictions_header
from streamdeq.tasks.segmentation.predictions import LabelMapPredictions
from streamdeq.tasks.segmentation.render import segmentation_labels

HEIGHT, WIDTH = 32, 64


pytestmark = pytest.mark.usefixtures("single_thread")


def frames_folder(folder: Path, count: int, height: int = HEIGHT, width: int = WIDTH) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return folder


def test_segmentation_predictions_are_label_maps_at_frame_size_named_by_input_index(
    tiny_seg_checkpoint, tmp_path
):
    source = frames_folder(tmp_path / "frames", 3)
    preds, stats = tmp_path / "preds", tmp_path / "stats.csv"
    outputs = []
    options = RunOptions(
        str(source),
        checkpoint=tiny_seg_checkpoint,
        iters=1,
        device="cpu",
        fps=10.0,
        predictions=preds,
        stats=stats,
    )
    report = run_video(options, on_frame=lambda frame, result: outputs.append(result.output))
    assert report.predictions == preds and report.frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "preds", "stats.csv"]
    lines = (preds / "index.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == PREDICTIONS_FORMAT and header["task"] == "segmentation"
    assert header["num_classes"] == 19 and header["fps"] == 10.0
    assert header["measured_on"]["device"] and header["measured_on"]["clock"] == "real"
    records = [json.loads(line) for line in lines[1:]]
    assert [(r["index"], r["timestamp"], r["file"]) for r in records] == [
        (0, 0.0, "000000.png"),
        (1, 0.1, "000001.png"),
        (2, 0.2, "000002.png"),
    ]
    for index, logits in enumerate(outputs):
        with Image.open(preds / f"{index:06d}.png") as image:
            assert image.mode == "L"  # 8-bit, one channel: Cityscapes-style
            saved = np.asarray(image)
        assert np.array_equal(saved, segmentation_labels(logits, (HEIGHT, WIDTH)))
    recorded = read_predictions(preds)
    assert recorded.task == "segmentation" and sorted(recorded.frames) == [0, 1, 2]
    assert recorded.output(2).dtype == np.int64


def test_detection_predictions_are_a_jsonl_of_every_box_in_frame_pixels(tmp_path):
    source = frames_folder(tmp_path / "frames", 2, height=64, width=128)
    preds = tmp_path / "boxes.jsonl"
    outputs = []
    options = RunOptions(
        str(source),
        model="mdeq-det-tiny-synthetic",
        iters=1,
        device="cpu",
        fps=5.0,
        predictions=preds,
    )
    run_video(options, on_frame=lambda frame, result: outputs.append(result.output))
    lines = preds.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["task"] == "detection" and header["class_ids"] and header["class_names"]
    records = [json.loads(line) for line in lines[1:]]
    assert [(r["index"], r["timestamp"]) for r in records] == [(0, 0.0), (1, 0.2)]
    for record, output in zip(records, outputs, strict=True):
        assert len(record["boxes"]) == len(record["scores"]) == len(output["scores"])
        np.testing.assert_allclose(record["boxes"], output["boxes"].reshape(-1, 4), atol=1e-3)
        assert record["labels"] == output["labels"].tolist()
    recorded = read_predictions(preds)
    assert recorded.task == "detection" and set(recorded.output(1)) == {"boxes", "scores", "labels"}


def fake_model(num_classes: int) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(num_classes=num_classes))


def one_hot(label: int, classes: int, size: tuple[int, int] = (4, 6)) -> torch.Tensor:
    logits = torch.zeros(classes, *size)
    logits[label] = 1.0
    return logits


def test_a_killed_run_leaves_every_written_frame_readable(tmp_path):
    """Nothing is finished (as after kill -9): the incomplete folder already holds each frame
    written, and a line torn mid-write is skipped."""
    header = predictions_header("segmentation", num_classes=3, fps=10.0)
    writer = LabelMapPredictions().writer(fake_model(3), tmp_path / "preds", header)
    for index in range(3):
        writer.write(index, index / 10, (4, 6), one_hot(index, 3))
    incomplete = tmp_path / "preds.incomplete"
    assert writer.incomplete_path == incomplete and not (tmp_path / "preds").exists()
    with (incomplete / "index.jsonl").open("a") as log:
        log.write('{"index": 3, "timest')  # the kill came mid-line
    recorded = read_predictions(incomplete)
    assert sorted(recorded.frames) == [0, 1, 2]
    assert [int(recorded.output(k)[0, 0]) for k in range(3)] == [0, 1, 2]
    writer.abort()


def test_a_new_run_replaces_a_killed_runs_incomplete_folder_and_says_so(tmp_path):
    header = predictions_header("segmentation", num_classes=3)
    first = LabelMapPredictions().writer(fake_model(3), tmp_path / "preds", header)
    first.write(0, 0.0, (4, 6), one_hot(1, 3))  # then killed: never finished
    second = LabelMapPredictions().writer(fake_model(3), tmp_path / "preds", header)
    assert second.replaced_incomplete
    second.write(0, 0.0, (4, 6), one_hot(2, 3))
    assert second.finish() == tmp_path / "preds"
    assert [p.name for p in tmp_path.iterdir()] == ["preds"]
    assert int(read_predictions(tmp_path / "preds").output(0)[0, 0]) == 2


def test_more_than_255_classes_are_16_bit_label_maps(tmp_path):
    header = predictions_header("segmentation", num_classes=300)
    writer = LabelMapPredictions().writer(fake_model(300), tmp_path / "preds", header)
    writer.write(0, 0.0, (4, 6), one_hot(299, 300))
    writer.finish()
    assert int(read_predictions(tmp_path / "preds").output(0)[0, 0]) == 299


def test_a_folder_that_holds_no_predictions_is_never_replaced(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"...")
    with pytest.raises(OutputError, match="is not a predictions folder"):
        LabelMapPredictions().writer(fake_model(3), tmp_path / "photos", {})
    assert (tmp_path / "photos" / "holiday.jpg").is_file()


def test_detection_predictions_need_a_jsonl_name(tmp_path):
    with pytest.raises(OutputError, match=".jsonl"):
        BoxesPredictions().writer(None, tmp_path / "boxes", {})


def test_segmentation_predictions_refuse_a_file_name(tmp_path):
    with pytest.raises(PredictionsError, match="a folder of PNG label maps; .* not a .jsonl file"):
        LabelMapPredictions().writer(fake_model(3), tmp_path / "preds.jsonl", {})
    assert not (tmp_path / "preds.jsonl").exists()


def test_predictions_of_one_task_are_not_read_as_another(tmp_path):
    writer = BoxesPredictions().writer(None, tmp_path / "b.jsonl", predictions_header("detection"))
    writer.finish()
    with pytest.raises(PredictionsError, match="detection model, read as segmentation"):
        from streamdeq.tasks.predictions import read_json_lines

        read_json_lines(tmp_path / "b.jsonl", "segmentation")


def test_predictions_into_a_missing_folder_fail_before_the_model_loads(tmp_path):
    with pytest.raises(SettingsError, match="--predictions .* does not exist"):
        RunOptions("in.mp4", predictions=tmp_path / "missing" / "preds")
    with pytest.raises(SettingsError, match="--stats and --predictions name the same path"):
        RunOptions("in.mp4", stats=tmp_path / "a.jsonl", predictions=tmp_path / "a.jsonl")
