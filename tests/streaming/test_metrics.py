"""Streaming mIoU and sAP: the ordinary metrics over the pairs, misses scored as empty."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from streamdeq.errors import SettingsError
from streamdeq.eval.segmentation import LabelRangeError
from streamdeq.streaming.metrics import (
    DetectionStreamingScorer,
    PairingDiagnostics,
    SegmentationStreamingScorer,
    StreamingMetric,
    score_streams,
    streaming_metric,
)
from streamdeq.streaming.pairing import Pair
from streamdeq.streaming.records import TimedOutput
from streamdeq.tasks import Task
from streamdeq.tasks.detection.metric import DetectionMetric
from streamdeq.tasks.segmentation.metric import SegmentationMetric

SEG_MODEL = SimpleNamespace(config=SimpleNamespace(task="segmentation", num_classes=2))


def timed(stream: str, k: int, finish: float, output: object) -> TimedOutput:
    return TimedOutput(stream=stream, input_index=k, finish_s=finish, output=output)


def logits_for(labels: list[list[int]], num_classes: int = 2) -> torch.Tensor:
    """(C, H, W) logits whose argmax is ``labels``."""
    return torch.nn.functional.one_hot(torch.tensor(labels), num_classes).permute(2, 0, 1).float()


def test_a_missed_frame_counts_its_labelled_pixels_as_false_negatives():
    # frame 0 is missed (the only output finishes at 0.05 s); frame 1 is answered with it
    missed_label = torch.tensor([[0, 1], [255, 1]])
    answered_label = torch.tensor([[0, 0], [1, 1]])
    prediction = logits_for([[0, 1], [1, 1]])
    metric = StreamingMetric(SegmentationStreamingScorer(2), fps=10)
    pairs = metric.update({0: missed_label, 1: answered_label}, [timed("a", 0, 0.05, prediction)])
    assert [p.missed for p in pairs] == [True, False]
    result = metric.compute()
    # answered: class 0 TP 1, FN 1 (predicted 1); class 1 TP 2, FP 1. missed: class 0 1 px, class 1 2 px
    # IoU_0 = 1 / (1 + 0 + 1 + 1) = 1/3, IoU_1 = 2 / (2 + 1 + 0 + 2) = 2/5
    assert result["smiou"] == pytest.approx((1 / 3 + 2 / 5) / 2)
    # answered frames alone: IoU_0 = 1/2, IoU_1 = 2/3
    assert result["miou_covered"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["spixel_accuracy"] == pytest.approx(3 / 7)
    assert (result["frames"], result["misses"], result["miss_rate"]) == (2, 1, 0.5)
    assert (result["own_input_rate"], result["lag_mean"], result["lag_p90"]) == (0.0, 1.0, 1.0)


def test_a_class_seen_only_in_missed_frames_scores_zero_and_counts_in_the_mean():
    metric = StreamingMetric(SegmentationStreamingScorer(3), fps=10)
    answered = torch.tensor([[0, 0]])
    metric.update(
        {0: torch.tensor([[2, 2]]), 1: answered}, [timed("a", 0, 0.1, logits_for([[0, 0]], 3))]
    )
    assert metric.compute()["smiou"] == pytest.approx((1.0 + 0.0) / 2)
    assert metric.compute()["miou_covered"] == 1.0


def _segmentation_case(seed: int):
    generator = torch.Generator().manual_seed(seed)
    annotations, outputs, offline = {}, [], SegmentationMetric(5)
    for stream in ("a", "b", "c"):
        frames = {}
        for k in range(10):
            logits = torch.randn(5, 8, 12, generator=generator)
            outputs.append(timed(stream, k, k / 30, logits))
            if k % 3 == 1:
                label = torch.randint(0, 5, (16, 24), generator=generator)
                label[torch.rand(16, 24, generator=generator) < 0.1] = 255
                frames[k] = label
                offline.update(logits, label)
        annotations[stream] = frames
    return annotations, outputs, offline


def test_a_zero_latency_run_equals_the_offline_segmentation_metric_exactly():
    annotations, outputs, offline = _segmentation_case(0)
    model = SimpleNamespace(config=SimpleNamespace(task="segmentation", num_classes=5))
    result = score_streams(model, annotations, reversed(outputs), fps=30)
    expected = offline.compute()
    assert result["smiou"] == expected["miou"]
    assert result["miou_covered"] == expected["miou"]
    assert result["spixel_accuracy"] == expected["pixel_accuracy"]
    assert (result["misses"], result["own_input_rate"], result["lag_mean"]) == (0, 1.0, 0.0)


def _box(x1: float, y1: float, x2: float, y2: float, label: int = 0, score: float = 0.9) -> dict:
    return {"boxes": [[x1, y1, x2, y2]], "scores": [score], "labels": [label]}


def _gt(x1: float, y1: float, x2: float, y2: float, label: int = 0) -> dict:
    return {"boxes": [[x1, y1, x2, y2]], "labels": [label]}


def test_a_late_output_paired_with_a_moved_box_loses_its_match():
    # fps 10; a 10 px box moves 6 px right between frames 0 and 1. Frame 0's detector output is
    # instantaneous; frame 1's finishes at 0.15 s, after frame 1 arrived (0.1 s).
    annotations = {0: _gt(0, 0, 10, 10), 1: _gt(6, 0, 16, 10)}
    outputs = [timed("a", 0, 0.0, _box(0, 0, 10, 10)), timed("a", 1, 0.15, _box(6, 0, 16, 10))]
    metric = StreamingMetric(DetectionStreamingScorer(), fps=10)
    metric.update(annotations, outputs)
    # frame 1 is answered by frame 0's box: IoU 4*10 / (100 + 100 - 40) = 0.25 -> a false
    # positive, its box a false negative. Ranked (tied scores, image order): TP, FP -> precision 1
    # up to recall 0.5 and nothing beyond: 51 of COCO's 101 recall points, at every IoU threshold
    result = metric.compute()
    assert result["sap50"] == pytest.approx(51 / 101)
    assert result["sap"] == pytest.approx(51 / 101)
    assert result["sap75"] == pytest.approx(51 / 101)
    # allowing one frame of latency (eta = -1) pairs frame 1 with its own output: a perfect AP
    relaxed = StreamingMetric(DetectionStreamingScorer(), fps=10, eta=-1)
    relaxed.update(annotations, outputs)
    assert relaxed.compute()["sap50"] == 1.0


def test_sap75_is_stricter_than_sap50_for_a_slightly_moved_box():
    # the box moved 2 px: IoU 80 / 120 = 0.667 -> a match at 0.50..0.65, a miss at 0.70..0.95
    annotations = {0: _gt(0, 0, 10, 10), 1: _gt(2, 0, 12, 10)}
    outputs = [timed("a", 0, 0.0, _box(0, 0, 10, 10))]
    metric = StreamingMetric(DetectionStreamingScorer(), fps=10)
    metric.update(annotations, outputs)
    result = metric.compute()
    assert result["sap50"] == pytest.approx(1.0)
    assert result["sap75"] == pytest.approx(51 / 101)
    assert result["sap"] == pytest.approx((4 * 1.0 + 6 * 51 / 101) / 10)


def test_a_missed_frame_keeps_its_ground_truth_boxes():
    # frame 0 missed, frame 1 answered exactly: 1 of 2 boxes found, precision 1 -> 51/101
    annotations = {0: _gt(0, 0, 10, 10), 1: _gt(0, 0, 10, 10)}
    metric = StreamingMetric(DetectionStreamingScorer(), fps=10)
    metric.update(annotations, [timed("a", 0, 0.1, _box(0, 0, 10, 10))])
    result = metric.compute()
    assert result["sap50"] == pytest.approx(51 / 101)
    assert (result["misses"], result["num_gt"]) == (1, 2)


def test_a_zero_latency_run_equals_the_offline_detection_metric_exactly():
    generator = torch.Generator().manual_seed(1)
    annotations, outputs, offline = {}, [], DetectionMetric()

    def boxes(n: int) -> torch.Tensor:
        corners = torch.rand(n, 2, generator=generator) * 80
        return torch.cat([corners, corners + 5 + torch.rand(n, 2, generator=generator) * 20], 1)

    for stream in ("a", "b"):
        annotations[stream] = {}
        for k in range(6):
            target = {"boxes": boxes(3), "labels": torch.randint(0, 3, (3,), generator=generator)}
            noisy = target["boxes"] + torch.randn(3, 4, generator=generator) * 3
            detections = {
                "boxes": torch.cat([noisy, boxes(2)]),
                "scores": torch.rand(5, generator=generator),
                "labels": torch.cat(
                    [target["labels"], torch.randint(0, 3, (2,), generator=generator)]
                ),
            }
            outputs.append(timed(stream, k, k / 30, detections))
            annotations[stream][k] = target
            offline.update(detections, target)
    result = score_streams(None, annotations, outputs, task="detect", fps=30)
    expected = offline.compute()
    assert result["sap50"] == expected["map50"]
    assert result["sap"] == expected["map"]
    assert 0 < result["sap"] < result["sap50"] < 1


def test_streaming_metric_picks_the_models_task():
    assert isinstance(streaming_metric(SEG_MODEL).scorer, SegmentationStreamingScorer)
    assert streaming_metric(SEG_MODEL).headline == "smiou"
    assert streaming_metric(None, task="detection").headline == "sap50"


def test_a_task_without_a_streaming_scorer_is_refused_in_one_line():
    with pytest.raises(SettingsError, match="no streaming scorer"):
        streaming_metric(None, task=Task(name="toy-brightness", short_name="toy"))
    with pytest.raises(SettingsError, match="no-such-task"):
        streaming_metric(None, task="no-such-task")


def test_an_output_without_its_prediction_cannot_be_scored():
    metric = streaming_metric(SEG_MODEL, fps=10)
    with pytest.raises(SettingsError, match="holds no prediction"):
        metric.update({0: torch.zeros(2, 2, dtype=torch.long)}, [timed("a", 0, 0.0, None)])


def test_a_label_equal_to_the_class_count_is_not_taken_for_a_miss():
    metric = streaming_metric(SEG_MODEL, fps=10)
    with pytest.raises(LabelRangeError, match="outside 0..1"):
        metric.update({0: torch.tensor([[2]])}, [])


def test_no_frames_give_nan_diagnostics():
    result = StreamingMetric(SegmentationStreamingScorer(2)).compute()
    assert result["frames"] == 0
    assert all(math.isnan(result[k]) for k in ("smiou", "miss_rate", "lag_mean", "lag_p90"))


def _rank_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        annotations, outputs, _ = _segmentation_case(2)
        late = [timed(o.stream, o.input_index, o.finish_s + 0.05, o.output) for o in outputs]
        mine = {s: annotations[s] for s in sorted(annotations)[rank::world]}
        result = score_streams(SEG_MODEL_5, mine, late, fps=30)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


SEG_MODEL_5 = SimpleNamespace(config=SimpleNamespace(task="segmentation", num_classes=5))


def test_all_reduce_across_two_processes_equals_one_process(tmp_path):
    # fork: the children inherit the imported torch (see tests/eval/test_segmentation.py)
    mp.start_processes(
        _rank_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    annotations, outputs, _ = _segmentation_case(2)
    late = [timed(o.stream, o.input_index, o.finish_s + 0.05, o.output) for o in outputs]
    single = score_streams(SEG_MODEL_5, annotations, late, fps=30)
    assert single["lag_mean"] > 0
    for rank in range(2):
        gathered = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert gathered == pytest.approx(single, nan_ok=True)


def test_diagnostics_count_own_inputs_and_take_the_lag_percentile():
    diagnostics = PairingDiagnostics()
    frame_outputs = [timed("a", g - lag, 0.0, None) for g, lag in enumerate(range(10), start=10)]
    diagnostics.add([Pair(g, o) for g, o in zip(range(10, 20), frame_outputs)])
    diagnostics.add([Pair(0, None), Pair(1, timed("a", 1, 0.0, None))])
    result = diagnostics.compute()
    # lags 0..9 and one more 0; one miss of 12 frames; own input: lag 0 twice
    assert (result["frames"], result["misses"]) == (12, 1)
    assert result["own_input_rate"] == pytest.approx(2 / 12)
    assert result["lag_mean"] == pytest.approx(45 / 11)
    assert result["lag_p90"] == pytest.approx(8.0)  # numpy linear: 0,0,1..9 -> rank 9.0 -> 8


def test_a_label_map_scores_as_the_logits_it_came_from():
    """A recorded run keeps (H, W) label maps, not logits: both must give the same matrix."""
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 8)
    target = torch.randint(0, 3, (6, 8))
    from_logits, from_labels = SegmentationStreamingScorer(3), SegmentationStreamingScorer(3)
    from_logits.score(logits, target)
    from_labels.score(logits.argmax(0), target)
    assert torch.equal(from_logits.matrix.matrix, from_labels.matrix.matrix)
    with pytest.raises(LabelRangeError, match=r"\(5, 8\) \(H, W\) but its annotation is \(6, 8\)"):
        from_labels.score(logits.argmax(0)[:5], target)
