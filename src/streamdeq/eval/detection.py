"""Detection accuracy: mAP@50 (and COCO mAP@[.5:.95]) of per-image box detections.

Two computations of AP@50 over the same detections, on purpose:

* the COCO protocol through ``faster-coco-eval`` (ground truth and detections built in memory,
  nothing written to disk): greedy matching of each detection, in score order, to the best
  still-unmatched ground-truth box; precision sampled at 101 recall points;
* a VOC-style AP written out here: each detection is matched to its highest-IoU ground-truth
  box, a false positive if that box is already taken; the area under the whole precision
  envelope (all-point interpolation, VOC 2010+).

On the same TP/FP sequence the two differ only by interpolation, and by at most
(p(0) - p(1)) / 100 <= 0.01 per class: both average the same non-increasing precision envelope
p(r), VOC as the exact integral over [0, 1], COCO as the mean of its 101 samples at r = k/100,
and both lie between the left and right Riemann sums on the 1/100 grid, which differ by
(p(0) - p(1)) / 100. The matching rules differ only when a detection's best box is already
taken while another unmatched box still overlaps it by >= 0.5 (crowded scenes). Use the
COCO numbers as the reported ones and the VOC ones as a cross-check.

Conventions: boxes are (x1, y1, x2, y2) in pixels, continuous (area (x2-x1)(y2-y1), no +1),
a match needs IoU >= 0.5 (the ILSVRC rule loosens this for objects under ~25x25 px; the paper
reports mAP@50, so the plain 0.5 is used). Classes with no ground-truth box anywhere have no AP
and are left out of the means; an evaluation with no ground truth at all has mAP NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from ..errors import StreamDEQError

#: The IoU a detection needs with a ground-truth box to count (AP@50).
IOU_THRESHOLD = 0.5

#: Detections kept per image (highest scores first), as COCO's maxDets = 100.
MAX_DETECTIONS = 100


class DetectionInputError(StreamDEQError, ValueError):
    """Detections or targets of the wrong form (missing keys, shapes that do not agree)."""


class MissingDetectionExtraError(StreamDEQError, ImportError):
    """faster-coco-eval (the ``detection`` extra) is not installed."""


@dataclass(frozen=True)
class ImageRecord:
    """One image's detections and ground truth as float64/int64 numpy arrays.

    Attributes:
        det_boxes: (N, 4) xyxy, sorted by score, highest first (stable), at most the cap.
        det_scores: (N,).
        det_labels: (N,) class indices.
        gt_boxes: (G, 4) xyxy.
        gt_labels: (G,).
    """

    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_labels: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray


@dataclass(frozen=True)
class DetectionMetrics:
    """The accuracy of a set of images.

    Attributes:
        map50: COCO AP at IoU 0.5, mean over classes with ground truth (the paper's mAP@50).
        map: COCO AP averaged over IoU 0.50:0.05:0.95.
        voc_map50: the VOC-style all-point AP at IoU 0.5, mean over the same classes.
        ap50_per_class, voc_ap50_per_class: class index -> AP (classes with ground truth).
        num_images, num_gt, num_detections: what was evaluated (detections after the cap).
    """

    map50: float
    map: float
    voc_map50: float
    ap50_per_class: dict[int, float] = field(default_factory=dict)
    voc_ap50_per_class: dict[int, float] = field(default_factory=dict)
    num_images: int = 0
    num_gt: int = 0
    num_detections: int = 0

    def as_row(self) -> dict[str, float | int]:
        """The scalar metrics as a flat dict (for CSV rows)."""
        return {
            "map50": self.map50,
            "map": self.map,
            "voc_map50": self.voc_map50,
            "num_images": self.num_images,
            "num_gt": self.num_gt,
            "num_detections": self.num_detections,
        }


class DetectionAccumulator:
    """Collects detections and ground truth image by image; computes mAP at the end.

    >>> acc = DetectionAccumulator()
    >>> acc.update(model_detections, targets)    # lists of per-image dicts, same length
    >>> acc.all_gather()                          # under torch.distributed: all ranks' images
    >>> acc.compute().map50

    Args:
        max_detections: detections kept per image, highest scores first (COCO's maxDets).
        iou_threshold: for the VOC-style AP (the COCO AP@50 always uses 0.5).
    """

    def __init__(
        self, max_detections: int = MAX_DETECTIONS, iou_threshold: float = IOU_THRESHOLD
    ) -> None:
        if isinstance(max_detections, bool) or not isinstance(max_detections, int):
            raise DetectionInputError(f"max_detections must be an integer, got {max_detections!r}")
        if max_detections < 1:
            raise DetectionInputError(f"max_detections must be >= 1, got {max_detections}")
        if not 0.0 < iou_threshold <= 1.0:
            raise DetectionInputError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        self.max_detections = max_detections
        self.iou_threshold = float(iou_threshold)
        self.records: list[ImageRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    def update(
        self, detections: Sequence[Mapping[str, object]], targets: Sequence[Mapping[str, object]]
    ) -> None:
        """Add images: ``detections[i]`` (boxes (N, 4), scores (N,), labels (N,)) are the
        model's for the image whose ground truth is ``targets[i]`` (boxes (G, 4), and labels
        (G,) or classes (G,), the datasets' key). Tensors or arrays, any device."""
        if isinstance(detections, Mapping) or isinstance(targets, Mapping):
            raise DetectionInputError(
                "update() takes lists of per-image dicts (wrap a single image's dict in a list)"
            )
        if len(detections) != len(targets):
            raise DetectionInputError(
                f"{len(detections)} detection dicts for {len(targets)} targets; give one of each "
                "per image"
            )
        for det, target in zip(detections, targets, strict=True):
            self.records.append(self._record(det, target))

    def merge(self, other: DetectionAccumulator) -> None:
        """Append ``other``'s images (e.g. another worker's) after this one's."""
        self.records.extend(other.records)

    def all_gather(self) -> None:
        """Replace the images by all ranks' images, in rank order, when torch.distributed is
        initialised (every rank then computes the same mAP); a no-op otherwise."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.records)
        self.records = [record for part in gathered for record in part]

    def reset(self) -> None:
        self.records = []

    def compute(self) -> DetectionMetrics:
        """COCO mAP@50, mAP@[.5:.95] and the VOC-style AP@50 of the images so far."""
        coco_ap50, coco_ap = coco_average_precision(self.records)
        voc_ap50 = voc_average_precision(self.records, self.iou_threshold)
        return DetectionMetrics(
            map50=_mean(coco_ap50),
            map=_mean(coco_ap),
            voc_map50=_mean(voc_ap50),
            ap50_per_class=coco_ap50,
            voc_ap50_per_class=voc_ap50,
            num_images=len(self.records),
            num_gt=sum(len(r.gt_labels) for r in self.records),
            num_detections=sum(len(r.det_labels) for r in self.records),
        )

    def _record(self, det: Mapping[str, object], target: Mapping[str, object]) -> ImageRecord:
        det_boxes = _boxes(det, "detections")
        scores = _vector(det, "scores", "detections", np.float64)
        det_labels = _vector(det, "labels", "detections", np.int64)
        if not len(det_boxes) == len(scores) == len(det_labels):
            raise DetectionInputError(
                f"detections have {len(det_boxes)} boxes, {len(scores)} scores and "
                f"{len(det_labels)} labels; they must agree"
            )
        label_key = "labels" if "labels" in target else "classes"
        gt_boxes = _boxes(target, "targets")
        gt_labels = _vector(target, label_key, "targets", np.int64)
        if len(gt_boxes) != len(gt_labels):
            raise DetectionInputError(
                f"targets have {len(gt_boxes)} boxes and {len(gt_labels)} {label_key}; they "
                "must agree"
            )
        order = np.argsort(-scores, kind="stable")[: self.max_detections]
        return ImageRecord(det_boxes[order], scores[order], det_labels[order], gt_boxes, gt_labels)


def evaluate_detections(
    detections: Sequence[Mapping[str, object]],
    targets: Sequence[Mapping[str, object]],
    max_detections: int = MAX_DETECTIONS,
) -> DetectionMetrics:
    """mAP of one list of per-image detections against their targets (see the module doc)."""
    accumulator = DetectionAccumulator(max_detections=max_detections)
    accumulator.update(detections, targets)
    return accumulator.compute()


def coco_average_precision(
    records: Sequence[ImageRecord],
) -> tuple[dict[int, float], dict[int, float]]:
    """Per-class COCO AP at IoU 0.5 and averaged over 0.50:0.95, via faster-coco-eval.

    Class c is COCO category c + 1 and image i is COCO image i + 1 (COCO reserves id 0 for
    "unmatched"). Classes without ground truth are absent from the result.
    """
    per_threshold = coco_ap_per_threshold(records)
    if not per_threshold:
        return {}, {}
    ap50 = {c: float(values[0]) for c, values in per_threshold.items()}
    ap = {c: float(values.mean()) for c, values in per_threshold.items()}
    return ap50, ap


def coco_ap_per_threshold(records: Sequence[ImageRecord]) -> dict[int, np.ndarray]:
    """Class -> (10,) COCO AP at each IoU threshold 0.50, 0.55, ..., 0.95 (index 5 is AP@75),
    for the classes with ground truth; the one faster-coco-eval run behind
    :func:`coco_average_precision`, for callers that need a threshold other than 0.5."""
    gt_classes = sorted({int(c) for r in records for c in r.gt_labels})
    if not gt_classes:
        return {}
    classes = sorted(set(gt_classes) | {int(c) for r in records for c in r.det_labels})
    ground_truth = {
        "images": [{"id": i + 1} for i in range(len(records))],
        "categories": [{"id": c + 1} for c in classes],
        "annotations": [
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": 0,
            }
            for ann_id, (image_id, category, bbox, _) in enumerate(_coco_boxes(records, "gt"), 1)
        ],
    }
    results = [
        {"image_id": image_id, "category_id": category, "bbox": bbox, "score": score}
        for image_id, category, bbox, score in _coco_boxes(records, "det")
    ]
    coco, coco_eval_cls = _coco_api()
    coco_gt = coco(ground_truth)
    coco_eval = coco_eval_cls(
        coco_gt, coco_gt.loadRes(results), iouType="bbox", print_function=_silent
    )
    coco_eval.params.maxDets = [max(MAX_DETECTIONS, max(len(r.det_labels) for r in records))]
    coco_eval.evaluate()
    coco_eval.accumulate()
    # precision: (IoU thresholds, 101 recall points, classes, area ranges, maxDets); area "all"
    precision = np.asarray(coco_eval.eval["precision"])[:, :, :, 0, -1]
    per_threshold = {}
    for k, category in enumerate(coco_eval.params.catIds):
        per_class = precision[:, :, k]
        if (per_class > -1).any():  # -1: no ground truth for this class
            per_threshold[int(category) - 1] = per_class.mean(axis=1)
    return per_threshold


def voc_average_precision(
    records: Sequence[ImageRecord], iou_threshold: float = IOU_THRESHOLD
) -> dict[int, float]:
    """Per-class VOC-style AP (all-point interpolation) for classes with ground truth."""
    gt_classes = sorted({int(c) for r in records for c in r.gt_labels})
    return {c: _voc_class_ap(records, c, iou_threshold) for c in gt_classes}


def _voc_class_ap(records: Sequence[ImageRecord], cls: int, iou_threshold: float) -> float:
    scores, hits = [], []
    num_gt = 0
    for record in records:
        gt = record.gt_boxes[record.gt_labels == cls]
        keep = record.det_labels == cls
        num_gt += len(gt)
        scores.append(record.det_scores[keep])
        hits.append(_match_voc(record.det_boxes[keep], gt, iou_threshold))
    all_scores = np.concatenate(scores)
    # stable: equal scores keep image order, then in-image order, exactly as COCO ranks them
    order = np.argsort(-all_scores, kind="stable")
    tp = np.concatenate(hits)[order].astype(np.float64)
    true_pos = np.cumsum(tp)
    false_pos = np.cumsum(1.0 - tp)
    recall = true_pos / num_gt
    precision = true_pos / np.maximum(true_pos + false_pos, np.finfo(np.float64).eps)
    return _all_point_area(recall, precision)


def _match_voc(det_boxes: np.ndarray, gt_boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(N,) bool: detection n (in score order) is a true positive under the VOC rule."""
    hits = np.zeros(len(det_boxes), dtype=bool)
    if len(gt_boxes) == 0 or len(det_boxes) == 0:
        return hits
    ious = box_iou(det_boxes, gt_boxes)
    best = ious.argmax(axis=1)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for n, g in enumerate(best):  # sequential by nature: a box is taken by the first to claim it
        if ious[n, g] >= iou_threshold and not taken[g]:
            hits[n] = taken[g] = True
    return hits


def _all_point_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (max precision at any recall >= r)."""
    if len(recall) == 0:
        return 0.0
    rec = np.concatenate([[0.0], recall, [1.0]])
    pre = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(pre[::-1])[::-1]
    steps = np.nonzero(rec[1:] != rec[:-1])[0]
    return float(np.sum((rec[steps + 1] - rec[steps]) * envelope[steps + 1]))


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of (A, 4) and (B, 4) xyxy boxes (continuous areas; 0 for empty unions)."""
    lt = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    rb = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=2)
    area_a = np.prod(np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _coco_boxes(records: Sequence[ImageRecord], kind: str):
    """(image_id, category_id, [x, y, w, h], score) of every box, images in order."""
    for i, record in enumerate(records):
        boxes = record.gt_boxes if kind == "gt" else record.det_boxes
        labels = record.gt_labels if kind == "gt" else record.det_labels
        scores = record.det_scores if kind == "det" else np.zeros(len(labels))
        for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist(), strict=True):
            x1, y1, x2, y2 = box
            yield i + 1, label + 1, [x1, y1, x2 - x1, y2 - y1], score


def _boxes(source: Mapping[str, object], what: str) -> np.ndarray:
    boxes = _array(source, "boxes", what, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DetectionInputError(
            f"{what} boxes must be (N, 4) x1, y1, x2, y2; got shape {tuple(boxes.shape)}"
        )
    if not np.isfinite(boxes).all():
        raise DetectionInputError(f"{what} boxes contain NaN or infinite coordinates")
    if (boxes[:, 2:] < boxes[:, :2]).any():
        raise DetectionInputError(
            f"{what} boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1; some are inverted"
        )
    return boxes


def _vector(source: Mapping[str, object], key: str, what: str, dtype: type) -> np.ndarray:
    values = _array(source, key, what, dtype)
    if values.ndim > 1 or (values.ndim == 0 and values.size != 0):
        raise DetectionInputError(f"{what} {key} must be a (N,) vector, got {tuple(values.shape)}")
    return values.reshape(-1)


def _array(source: Mapping[str, object], key: str, what: str, dtype: type) -> np.ndarray:
    if not isinstance(source, Mapping):
        raise DetectionInputError(
            f"each image's {what} must be a dict with boxes, got {type(source).__name__}"
        )
    if key not in source:
        needed = "boxes, scores, labels" if what == "detections" else "boxes, labels"
        raise DetectionInputError(f"{what} dict has no {key!r} (needs {needed})")
    value = source[key]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _mean(per_class: Mapping[int, float]) -> float:
    return float(np.mean(list(per_class.values()))) if per_class else math.nan


def _coco_api() -> tuple[type, type]:
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise MissingDetectionExtraError(
            "mAP needs faster-coco-eval: pip install 'streamdeq[detection]'"
        ) from None
    return COCO, COCOeval_faster


def _silent(*args: object, **kwargs: object) -> None:
    pass
