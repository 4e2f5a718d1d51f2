"""mAP@50: a hand-computed case, COCO vs VOC-style agreement, empty inputs, distributed merge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from streamdeq.errors import StreamDEQError
from streamdeq.eval.detection import (
    DetectionAccumulator,
    DetectionInputError,
    box_iou,
    evaluate_detections,
)


def _det(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _gt(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _hand_case():
    """Class 0: ranked TP, FP, TP, FP (duplicate), TP with 3 boxes; class 1: FP then TP of 1 box;
    class 2 only in detections (no AP)."""
    targets = [
        _gt([[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]], [0, 0, 1]),
        _gt([[0, 0, 10, 10]], [0]),
    ]
    detections = [
        _det(
            [[0, 0, 10, 10], [21, 0, 31, 10], [0, 0, 10, 10], [0, 20, 10, 30], [5, 5, 9, 9]],
            [0.9, 0.7, 0.6, 0.3, 0.2],
            [0, 0, 0, 1, 2],
        ),
        _det([[50, 50, 60, 60], [0, 0, 10, 10], [40, 40, 50, 50]], [0.8, 0.5, 0.95], [0, 0, 1]),
    ]
    return detections, targets


def test_hand_computed_ap_matches_both_interpolations():
    metrics = evaluate_detections(*_hand_case())
    # class 0, precision envelope 1 up to recall 1/3, 2/3 up to 2/3, 0.6 up to 1
    voc0 = (1 + 2 / 3 + 0.6) / 3
    coco0 = (34 * 1 + 33 * 2 / 3 + 34 * 0.6) / 101  # recall points k/100 in each third
    assert metrics.voc_ap50_per_class == pytest.approx({0: voc0, 1: 0.5})
    assert metrics.ap50_per_class == pytest.approx({0: coco0, 1: 0.5})
    assert metrics.voc_map50 == pytest.approx((voc0 + 0.5) / 2)
    assert metrics.map50 == pytest.approx((coco0 + 0.5) / 2)
    assert (metrics.num_images, metrics.num_gt, metrics.num_detections) == (2, 4, 8)


def test_coco_map_over_iou_range_penalises_loose_boxes():
    detections, targets = _hand_case()
    metrics = evaluate_detections(detections, targets)
    # class 1's match is exact (AP 0.5 at every IoU); class 0's shifted box (IoU 0.82) stops
    # matching above 0.8, so its AP over 0.50:0.95 is below its AP@50
    assert metrics.map < metrics.map50


def _random_case(seed: int, num_images: int = 6, num_classes: int = 3):
    """Ground-truth boxes in disjoint grid cells (so VOC and COCO matching coincide), detections
    = jittered copies (some too loose), duplicates and random boxes, distinct random scores."""
    rng = np.random.default_rng(seed)
    detections, targets = [], []
    for _ in range(num_images):
        cells = rng.permutation(16)[: rng.integers(0, 8)]
        gt_boxes = []
        for cell in cells:
            x0, y0 = (cell % 4) * 50.0, (cell // 4) * 50.0
            w, h = rng.uniform(15, 40, size=2)
            gt_boxes.append([x0, y0, x0 + w, y0 + h])
        gt_boxes = np.array(gt_boxes).reshape(-1, 4)
        gt_labels = rng.integers(0, num_classes, size=len(gt_boxes))
        det_boxes, det_labels, det_scores = [], [], []
        for box, label in zip(gt_boxes, gt_labels):
            for _ in range(rng.integers(0, 3)):  # 0 (missed), 1, or 2 (a duplicate)
                jittered = box + rng.normal(0, rng.choice([1.0, 8.0]), size=4)
                det_boxes.append(
                    [
                        *np.minimum(jittered[:2], jittered[2:]),
                        *np.maximum(jittered[:2], jittered[2:]),
                    ]
                )
                det_labels.append(label if rng.random() < 0.9 else rng.integers(num_classes))
                det_scores.append(rng.uniform(0.2, 1.0))
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 180, size=2)
            det_boxes.append([x, y, x + rng.uniform(5, 40), y + rng.uniform(5, 40)])
            det_labels.append(rng.integers(num_classes))
            det_scores.append(rng.uniform(0.0, 0.6))
        targets.append({"boxes": gt_boxes, "labels": gt_labels})
        detections.append(
            {
                "boxes": np.array(det_boxes).reshape(-1, 4),
                "scores": np.array(det_scores),
                "labels": np.array(det_labels, dtype=np.int64),
            }
        )
    return detections, targets


@pytest.mark.parametrize("seed", range(12))
def test_coco_and_voc_ap_agree_within_interpolation_bound(seed):
    metrics = evaluate_detections(*_random_case(seed))
    assert metrics.ap50_per_class.keys() == metrics.voc_ap50_per_class.keys()
    for cls, voc_ap in metrics.voc_ap50_per_class.items():
        # same TP/FP ranking; 101-point vs all-point differ by <= (p(0) - p(1)) / 100
        assert abs(metrics.ap50_per_class[cls] - voc_ap) <= 0.01 + 1e-9


def test_agreement_is_not_vacuous():
    """The random cases exercise a real spread of AP, where the interpolations do differ."""
    aps, gaps = [], []
    for seed in range(12):
        metrics = evaluate_detections(*_random_case(seed))
        aps.extend(metrics.voc_ap50_per_class.values())
        gaps.extend(
            abs(metrics.ap50_per_class[c] - v) for c, v in metrics.voc_ap50_per_class.items()
        )
    assert min(aps) < 0.6 < max(aps)
    assert max(gaps) > 0.0


def test_perfect_detections_score_one():
    _, targets = _random_case(3)
    detections = [
        {
            "boxes": t["boxes"],
            "scores": np.linspace(1, 0.5, len(t["labels"])),
            "labels": t["labels"],
        }
        for t in targets
    ]
    metrics = evaluate_detections(detections, targets)
    assert metrics.map50 == pytest.approx(1.0)
    assert metrics.voc_map50 == pytest.approx(1.0)
    assert metrics.map == pytest.approx(1.0)


def test_order_of_detections_within_an_image_does_not_matter():
    detections, targets = _random_case(5)
    rng = np.random.default_rng(0)
    shuffled = []
    for det in detections:
        perm = rng.permutation(len(det["scores"]))
        shuffled.append({key: value[perm] for key, value in det.items()})
    assert evaluate_detections(shuffled, targets) == evaluate_detections(detections, targets)


def test_no_detections_give_zero_ap_for_every_class_with_ground_truth():
    _, targets = _hand_case()
    empty = [_det([], [], []) for _ in targets]
    metrics = evaluate_detections(empty, targets)
    assert metrics.ap50_per_class == {0: 0.0, 1: 0.0}
    assert metrics.voc_ap50_per_class == {0: 0.0, 1: 0.0}
    assert metrics.map50 == 0.0


def test_no_ground_truth_leaves_map_undefined():
    detections, _ = _hand_case()
    metrics = evaluate_detections(detections, [_gt([], []) for _ in detections])
    assert math.isnan(metrics.map50) and math.isnan(metrics.voc_map50)
    assert metrics.ap50_per_class == {} and metrics.voc_ap50_per_class == {}


def test_no_images_leaves_map_undefined():
    metrics = DetectionAccumulator().compute()
    assert math.isnan(metrics.map50) and metrics.num_images == 0


def test_image_without_boxes_among_others_only_adds_false_positives():
    detections, targets = _hand_case()
    base = evaluate_detections(detections, targets)
    extra_fp = _det([[0, 0, 5, 5]], [0.99], [1])
    worse = evaluate_detections([*detections, extra_fp], [*targets, _gt([], [])])
    assert worse.voc_ap50_per_class[0] == base.voc_ap50_per_class[0]
    assert worse.voc_ap50_per_class[1] < base.voc_ap50_per_class[1]


def test_only_the_top_scoring_detections_per_image_count():
    targets = [_gt([[0, 0, 10, 10]], [0])]
    low_hit = _det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.1], [0, 0])
    assert evaluate_detections([low_hit], targets, max_detections=1).map50 == 0.0
    assert evaluate_detections([low_hit], targets, max_detections=2).map50 > 0.0


def test_targets_may_name_labels_classes():
    detections, targets = _hand_case()
    renamed = [{"boxes": t["boxes"], "classes": t["labels"]} for t in targets]
    assert evaluate_detections(detections, renamed) == evaluate_detections(detections, targets)


def test_merge_equals_one_accumulator():
    detections, targets = _random_case(7)
    whole = DetectionAccumulator()
    whole.update(detections, targets)
    first, second = DetectionAccumulator(), DetectionAccumulator()
    first.update(detections[:3], targets[:3])
    second.update(detections[3:], targets[3:])
    first.merge(second)
    assert first.compute() == whole.compute()


def test_box_iou_of_known_pairs():
    a = np.array([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5.0, 0, 15, 10], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    ("detections", "targets", "message"),
    [
        ([_det([[0, 0, 1, 1]], [0.5], [0])], [], "1 detection dicts for 0 targets"),
        ([{"boxes": [[0, 0, 1, 1]], "labels": [0]}], [_gt([], [])], "no 'scores'"),
        ([_det([[0, 0, 1, 1]], [0.5, 0.4], [0])], [_gt([], [])], "must agree"),
        ([_det([], [], [])], [{"boxes": [[0, 0, 1]], "labels": [0]}], "must be (N, 4)"),
        ([_det([], [], [])], [_gt([[0, 0, float("nan"), 1]], [0])], "NaN"),
        ([_det([[5, 0, 1, 1]], [0.5], [0])], [_gt([], [])], "inverted"),
    ],
)
def test_malformed_inputs_raise_one_clear_error(detections, targets, message):
    with pytest.raises(DetectionInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate_detections(detections, targets)
    assert issubclass(DetectionInputError, StreamDEQError)


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    detections, targets = _random_case(11)
    accumulator = DetectionAccumulator()
    accumulator.update(detections[rank::world], targets[rank::world])
    accumulator.all_gather()
    metrics = accumulator.compute()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps([metrics.map50, metrics.voc_map50]))
    dist.destroy_process_group()


def test_all_gather_across_two_processes_equals_one_process(tmp_path):
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    detections, targets = _random_case(11)
    # the gathered order is rank 0's images then rank 1's: reorder the reference the same way
    order = [*range(0, len(targets), 2), *range(1, len(targets), 2)]
    single = evaluate_detections([detections[i] for i in order], [targets[i] for i in order])
    for rank in range(2):
        gathered = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert gathered == pytest.approx([single.map50, single.voc_map50])
