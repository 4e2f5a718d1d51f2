"""Argoverse-HD-style manifests, sAP results and timestamped outputs: round trips, the toolkit's
file shapes, and one-line errors for bad files."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from streamdeq.streaming.manifest import (
    Manifest,
    ManifestBox,
    ManifestError,
    ManifestImage,
    detections_to_results,
    paired_results,
    read_manifest,
    read_results,
    read_timed_dir,
    read_timed_outputs,
    write_manifest,
    write_results,
    write_timed_dir,
    write_timed_outputs,
)
from streamdeq.streaming.metrics import score_streams
from streamdeq.streaming.pairing import pair_streams
from streamdeq.streaming.records import TimedOutput


def small_manifest() -> Manifest:
    """Two sequences; the second annotates frames 0 and 30 only (index, not rank)."""
    images = [
        ManifestImage(0, 0, 0, "a/0.jpg", 64, 48),
        ManifestImage(1, 0, 1, "a/1.jpg", 64, 48),
        ManifestImage(2, 1, 0, "b/0.jpg", 64, 48),
        ManifestImage(3, 1, 30, "b/30.jpg", 64, 48),
    ]
    boxes = [
        ManifestBox(1, 0, (0.0, 0.0, 10.0, 10.0), 0, {"track": 7}),
        ManifestBox(2, 1, (2.0, 0.0, 10.0, 10.0), 0, {"track": 7}),
        ManifestBox(3, 2, (20.0, 20.0, 8.0, 4.0), 1),
        ManifestBox(4, 3, (30.0, 20.0, 8.0, 4.0), 1),
    ]
    categories = [{"id": 0, "name": "person"}, {"id": 1, "name": "car"}]
    return Manifest(["a", "b"], images, boxes, categories, {"seq_dirs": ["a", "b"]})


def test_a_manifest_survives_a_round_trip(tmp_path):
    manifest = small_manifest()
    write_manifest(manifest, tmp_path / "m.json")
    again = read_manifest(tmp_path / "m.json")
    assert again.sequences == manifest.sequences
    assert again.images == manifest.images
    assert again.categories == manifest.categories
    assert again.extra == {"seq_dirs": ["a", "b"]}
    for read, written in zip(again.annotations, manifest.annotations):
        assert (read.id, read.image_id, read.bbox, read.category_id) == (
            written.id,
            written.image_id,
            written.bbox,
            written.category_id,
        )
        assert read.extra["track" if written.extra else "iscrowd"] == written.extra.get("track", 0)
    # what COCO tools need is written: area and iscrowd
    raw = json.loads((tmp_path / "m.json").read_text())
    assert raw["annotations"][2]["area"] == 32.0 and raw["annotations"][2]["iscrowd"] == 0
    write_manifest(again, tmp_path / "m2.json")
    assert read_manifest(tmp_path / "m2.json") == again


def test_targets_are_keyed_by_sequence_and_frame_index_in_corner_form():
    targets = small_manifest().targets()
    assert sorted(targets["b"]) == [0, 30]
    np.testing.assert_array_equal(targets["a"][1]["boxes"], [[2, 0, 12, 10]])
    np.testing.assert_array_equal(targets["b"][30]["labels"], [1])
    assert [img.fid for img in small_manifest().images_of("b")] == [0, 30]


def _with(change) -> dict:
    raw = {
        "sequences": ["a"],
        "categories": [{"id": 0, "name": "person"}],
        "images": [{"id": 0, "sid": 0, "fid": 0, "name": "0.jpg", "width": 4, "height": 4}],
        "annotations": [{"id": 1, "image_id": 0, "bbox": [0, 0, 2, 2], "category_id": 0}],
    }
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("sequences"), "has no 'sequences'"),
        (lambda r: r["images"][0].update(sid=1), r"images\[0\].sid is 1, but there are 1"),
        (lambda r: r["images"][0].pop("fid"), r"images\[0\] has no 'fid'"),
        (lambda r: r["images"].append(dict(r["images"][0], id=5)), r"\(sid, fid\) frame"),
        (lambda r: r["images"].append(dict(r["images"][0], fid=5)), "image id 0 appears twice"),
        (lambda r: r["annotations"][0].update(image_id=9), "names image 9"),
        (lambda r: r["annotations"][0].update(category_id=3), "names category 3"),
        (lambda r: r["annotations"][0].update(bbox=[0, 0, -1, 2]), "negative width"),
        (lambda r: r["annotations"][0].update(bbox=[0, 0, 2]), r"must be \[x, y, w, h\]"),
        (lambda r: r["annotations"][0].update(iscrowd=1), "crowd"),
        (lambda r: r["images"][0].update(width="4"), "must be an integer"),
    ],
)
def test_a_bad_manifest_names_the_file_and_the_problem(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_with(change)))
    with pytest.raises(ManifestError, match=message) as error:
        read_manifest(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_file_that_is_not_json_or_not_there_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        read_manifest(tmp_path / "x.json")
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ManifestError, match="a manifest is a JSON object"):
        read_manifest(tmp_path / "list.json")


def test_results_round_trip_and_are_checked_against_the_manifest(tmp_path):
    detections = {
        "boxes": torch.tensor([[1.0, 2.0, 5.0, 8.0]]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([1]),
    }
    results = detections_to_results(3, detections)
    assert results == [
        {"image_id": 3, "bbox": [1.0, 2.0, 4.0, 6.0], "score": 0.5, "category_id": 1}
    ]
    write_results(results, tmp_path / "r.json")
    assert read_results(tmp_path / "r.json", small_manifest()) == results
    write_results([dict(results[0], image_id=42)], tmp_path / "bad.json")
    with pytest.raises(ManifestError, match="names image 42"):
        read_results(tmp_path / "bad.json", small_manifest())
    (tmp_path / "nan.json").write_text('[{"image_id": 3, "bbox": [0, 0, 1, 1], "category_id": 1}]')
    with pytest.raises(ManifestError, match=r"results\[0\] has no 'score'"):
        read_results(tmp_path / "nan.json")


def _outputs(stream: str = "a") -> list[TimedOutput]:
    det0 = {
        "boxes": np.array([[0.0, 0.0, 10.0, 10.0]]),
        "scores": np.array([0.9]),
        "labels": np.array([0]),
    }
    none = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, dtype=np.int64)}
    # deliberately out of finish order
    return [
        TimedOutput(stream, 1, 0.15, det0, latency_ms=50.0),
        TimedOutput(stream, 0, 0.02, none, latency_ms=20.0),
    ]


@pytest.mark.parametrize("suffix", [".pkl", ".json"])
def test_timed_outputs_round_trip_in_finish_order(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    write_timed_outputs(_outputs(), path)
    read = read_timed_outputs(path)
    assert [(o.stream, o.input_index, o.finish_s) for o in read] == [("a", 0, 0.02), ("a", 1, 0.15)]
    assert [o.latency_ms for o in read] == pytest.approx([20.0, 50.0])
    assert read[0].output["boxes"].shape == (0, 4)
    np.testing.assert_array_equal(read[1].output["boxes"], [[0, 0, 10, 10]])
    np.testing.assert_array_equal(read[1].output["labels"], [0])


def test_the_pickle_has_the_toolkits_keys_and_arrays(tmp_path):
    write_timed_outputs(_outputs(), tmp_path / "a.pkl")
    with (tmp_path / "a.pkl").open("rb") as file:
        record = pickle.load(file)  # as the toolkit loads it: plain pickle
    assert record["timestamps"] == [0.02, 0.15] and record["input_fidx"] == [0, 1]
    boxes, scores, labels, masks = record["results_parsed"][1]
    assert scores.tolist() == pytest.approx([0.9]) and labels.tolist() == [0]
    assert boxes.dtype == np.float32 and boxes.shape == (1, 4) and masks is None
    assert record["results_parsed"][0][0].shape == (0, 4)


def test_a_pickle_written_the_toolkits_way_is_read(tmp_path):
    record = {
        "results_raw": [[np.zeros((0, 5), np.float32)]],
        "results_parsed": [
            (np.array([[1, 2, 3, 4]], np.float32), np.array([0.7], np.float32), np.array([2]), None)
        ],
        "timestamps": [0.04],
        "input_fidx": [0],
        "runtime": [0.04],
    }
    (tmp_path / "s.pkl").write_bytes(pickle.dumps(record))
    (output,) = read_timed_outputs(tmp_path / "s.pkl")
    assert (output.stream, output.input_index, output.finish_s) == ("s", 0, 0.04)
    np.testing.assert_array_equal(output.output["labels"], [2])


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"timestamps": _Payload()}))
    with pytest.raises(ManifestError, match="refusing to load"):
        read_timed_outputs(tmp_path / "evil.pkl")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"timestamps": [0.1], "input_fidx": [0]}, "has no 'results_parsed'"),
        (
            {"timestamps": [0.1], "input_fidx": [0, 1], "results_parsed": [[[], [], []]]},
            "must agree",
        ),
        (
            {"timestamps": ["x"], "input_fidx": [0], "results_parsed": [[[], [], []]]},
            "finite number",
        ),
        (
            {"timestamps": [0.1], "input_fidx": [0], "results_parsed": [[[[1, 2, 3, 4]], [], []]]},
            "1 boxes, 0 scores",
        ),
    ],
)
def test_bad_timed_outputs_name_the_file_and_problem(tmp_path, record, message):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ManifestError, match=message) as error:
        read_timed_outputs(path)
    assert str(error.value).startswith(str(path))


def test_a_run_written_in_the_toolkits_layout_scores_the_same_as_coco_tools_on_its_results(
    tmp_path,
):
    from faster_coco_eval import COCO, COCOeval_faster

    manifest = small_manifest()
    write_manifest(manifest, tmp_path / "manifest.json")
    car = {
        "boxes": np.array([[20.0, 20.0, 28.0, 24.0]]),
        "scores": np.array([0.8]),
        "labels": np.array([1]),
    }
    moved_car = dict(car, boxes=np.array([[30.0, 20.0, 38.0, 24.0]]))
    person = {
        "boxes": np.array([[0.0, 0.0, 10.0, 10.0]]),
        "scores": np.array([0.9]),
        "labels": np.array([0]),
    }
    run = [
        # frame 0 of both sequences is missed (nothing out at 0 s); frame 1 of "a" is answered
        # by frame 0's person box, which has moved 2 px: IoU 0.667, a match only below 0.7
        TimedOutput("a", 0, 0.02, person, latency_ms=20.0),
        # frame 30 of "b" is answered by frame 25's car, not by the stale one of frame 0
        TimedOutput("b", 0, 0.01, car, latency_ms=10.0),
        TimedOutput("b", 25, 0.9, moved_car, latency_ms=66.0),
    ]
    write_timed_dir(run, manifest, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["a.pkl", "b.pkl"]
    outputs = read_timed_dir(read_manifest(tmp_path / "manifest.json"), tmp_path / "run")
    ours = score_streams(None, manifest.targets(), outputs, task="detection", fps=30)
    # the toolkit's path: pair, write the results, COCO-evaluate them against the manifest
    annotated = {s: sorted(frames) for s, frames in manifest.targets().items()}
    write_results(
        paired_results(manifest, pair_streams(outputs, annotated, fps=30)), tmp_path / "r.json"
    )
    ground_truth = COCO(str(tmp_path / "manifest.json"))
    evaluation = COCOeval_faster(
        ground_truth,
        ground_truth.loadRes(str(tmp_path / "r.json")),
        iouType="bbox",
        print_function=lambda *a, **k: None,
    )
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    # per class: 1 of 2 boxes found at precision 1 -> 51/101; the person only up to IoU 0.65
    assert (ours["misses"], ours["sap50"], ours["sap75"]) == (
        2,
        pytest.approx(51 / 101),
        pytest.approx(51 / 202),
    )
    assert ours["sap"] == pytest.approx(evaluation.stats[0])
    assert ours["sap50"] == pytest.approx(evaluation.stats[1])
    assert ours["sap75"] == pytest.approx(evaluation.stats[2])


def test_a_test_split_manifest_without_annotations_has_no_boxes(tmp_path):
    path = tmp_path / "test-meta.json"
    path.write_text(json.dumps(_with(lambda r: r.pop("annotations"))))
    manifest = read_manifest(path)
    assert manifest.annotations == [] and len(manifest.images) == 1
    assert manifest.targets()["a"][0]["boxes"].shape == (0, 4)
