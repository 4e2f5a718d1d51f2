"""Streaming accuracy: the task's ordinary metric over (annotation of frame g, output paired
with g by :mod:`~streamdeq.streaming.pairing`), with misses scored as empty predictions.

This follows streaming AP (sAP) of Li, Wang and Ramanan, "Towards Streaming Perception"
(ECCV 2020; reference implementation ``mtli/sAP``, ``det/streaming_eval.py``), and carries the
same rule over to segmentation:

* **detection**: sAP = COCO AP@[.5:.95] over the pairs, with sAP50 and sAP75 beside it, through
  the project's faster-coco-eval path (:mod:`streamdeq.eval.detection`). A miss is an empty set
  of detections for the frame; its ground-truth boxes still count, so they lower recall.
* **segmentation**: streaming mIoU from one confusion matrix of (ground truth of g, paired
  prediction) with one extra "no prediction" column: a missed frame's labelled pixels land in
  it, so they are false negatives of their class (IoU_c = TP / (TP + FP + FN), FN including the
  missed pixels) while the column itself is no class and stays out of the mean. The mIoU over
  the answered frames alone (``miou_covered``) and the miss rate are reported beside it, so that
  staleness and silence can be told apart.

Every task also gets the pairing's diagnostics: frames scored, misses, miss rate, the share of
frames answered by their own input (k == g), and the mean and 90th percentile (numpy's linear
interpolation) of the lag g - k over the answered frames.

A task plugs in with :func:`register_streaming_scorer` (a :class:`FrameScorer` knows how to
score an answered frame and a missed one); :func:`streaming_metric` picks the scorer of a model's
task, as the experiments pick :meth:`streamdeq.tasks.Task.build_metric`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from ..data.labels import IGNORE_INDEX
from ..errors import SettingsError
from ..eval.detection import DetectionAccumulator, coco_ap_per_threshold
from ..eval.segmentation import ConfusionMatrix, LabelRangeError
from ..registry import Registry
from ..tasks import Task, get_task, task_of
from ..tasks.segmentation.metric import as_label_tensor, predict_labels
from .pairing import Pair, pair_stream
from .records import TimedOutput


class FrameScorer(Protocol):
    """One task's side of streaming scoring: its ordinary metric, plus what a miss means."""

    #: the column plotted against speed ("smiou", "sap50")
    headline: str

    def score(self, output: Any, target: Any) -> None:
        """An answered frame: the paired output (as the stream returned it, no batch
        dimension) against the frame's annotation."""
        ...

    def miss(self, target: Any) -> None:
        """A frame nothing had answered by its query time."""
        ...

    def all_reduce(self) -> None: ...

    def compute(self) -> dict[str, float | int]: ...


ScorerFactory = Callable[[Any], FrameScorer]
"""Builds an empty scorer for a model (it may read ``model.config``: the class count)."""

STREAMING_SCORERS: Registry[ScorerFactory] = Registry("streaming scorer", error=SettingsError)


def register_streaming_scorer(
    task: str, factory: ScorerFactory, *, overwrite: bool = False
) -> ScorerFactory:
    """Make the task called ``task`` scorable by :func:`streaming_metric`."""
    return STREAMING_SCORERS.register(task, factory, overwrite=overwrite)


class SegmentationStreamingScorer:
    """Streaming mIoU: a (C + 1)-class confusion matrix whose last column is "no prediction".

    Answered frames: (classes, h, w) logits, upsampled bilinearly to the label map before the
    argmax (:func:`~streamdeq.tasks.segmentation.metric.predict_labels`, as the offline
    metric), or an (H, W) integer label map already at the annotation's size (a recorded
    run's predictions, ``streamdeq run --predictions``). Missed frames: every labelled pixel
    counted in the last column. Pixels labelled :data:`~streamdeq.data.labels.IGNORE_INDEX` are
    not scored.
    """

    headline = "smiou"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.matrix = ConfusionMatrix(num_classes=self.num_classes + 1, ignore_index=IGNORE_INDEX)

    def score(self, output: Any, target: Any) -> None:
        label = self.label(target)
        if _is_label_map(output):
            predicted = as_label_tensor(output)
            if predicted.shape != label.shape:
                raise LabelRangeError(
                    f"a predicted label map is {tuple(predicted.shape)} (H, W) but its "
                    f"annotation is {tuple(label.shape)}: run the model on frames of the "
                    "annotations' size"
                )
        else:
            predicted = predict_labels(output, tuple(label.shape))
        self.matrix.update(predicted, label)

    def miss(self, target: Any) -> None:
        label = self.label(target)
        self.matrix.update(torch.full_like(label, self.num_classes), label)

    def all_reduce(self) -> None:
        self.matrix.all_reduce()

    def compute(self) -> dict[str, float | int]:
        c = self.num_classes
        iou = self.matrix.iou()[:c]  # the "no prediction" class is no class: not averaged
        valid = ~iou.isnan()
        covered = ConfusionMatrix(num_classes=c, ignore_index=IGNORE_INDEX)
        covered.matrix = self.matrix.matrix[:c, :c].clone()
        return {
            "smiou": float(iou[valid].mean()) if valid.any() else math.nan,
            "miou_covered": covered.miou(),
            "spixel_accuracy": self.matrix.pixel_accuracy(),
        }

    def label(self, target: Any) -> torch.Tensor:
        """The annotation as an int64 label map, checked against the class count."""
        label = as_label_tensor(target)
        scored = label[label != IGNORE_INDEX]
        # the matrix has one class more than the data; a label equal to C must not pass as it
        if scored.numel() and (scored.min() < 0 or scored.max() >= self.num_classes):
            raise LabelRangeError(
                f"target holds values outside 0..{self.num_classes - 1} (min "
                f"{int(scored.min())}, max {int(scored.max())}); map labels to train IDs and "
                f"mark void pixels {IGNORE_INDEX}"
            )
        return label


class DetectionStreamingScorer:
    """sAP: COCO AP over the paired detections, a miss being an empty detection set.

    Answered frames: the stream's dict (``boxes`` (N, 4) x1 y1 x2 y2 pixels, ``scores``,
    ``labels``) against the frame's ``boxes`` and ``labels``.
    """

    headline = "sap50"

    def __init__(self) -> None:
        self.accumulator = DetectionAccumulator()

    def score(self, output: Any, target: Any) -> None:
        self.accumulator.update([output], [target])

    def miss(self, target: Any) -> None:
        self.accumulator.update([_no_detections()], [target])

    def all_reduce(self) -> None:
        self.accumulator.all_gather()

    def compute(self) -> dict[str, float | int]:
        per_threshold = coco_ap_per_threshold(self.accumulator.records)
        # same arithmetic as DetectionMetrics.map: per-class mean over thresholds, then classes
        return {
            "sap": _class_mean(per_threshold, lambda ap: float(ap.mean())),
            "sap50": _class_mean(per_threshold, lambda ap: float(ap[0])),
            "sap75": _class_mean(per_threshold, lambda ap: float(ap[5])),
            "num_gt": sum(len(r.gt_labels) for r in self.accumulator.records),
        }


def _is_label_map(output: Any) -> bool:
    """An (H, W) map of integer class ids, not (classes, h, w) logits."""
    if isinstance(output, torch.Tensor):
        return output.dim() == 2 and not output.is_floating_point()
    array = np.asarray(output)
    return array.ndim == 2 and np.issubdtype(array.dtype, np.integer)


def segmentation_scorer(model: Any) -> SegmentationStreamingScorer:
    return SegmentationStreamingScorer(int(model.config.num_classes))


def detection_scorer(model: Any) -> DetectionStreamingScorer:
    return DetectionStreamingScorer()


register_streaming_scorer("segmentation", segmentation_scorer)
register_streaming_scorer("detection", detection_scorer)


class PairingDiagnostics:
    """How the pairing went: misses, frames answered by their own input, lag in frames."""

    def __init__(self) -> None:
        self.frames = 0
        self.misses = 0
        self.own_input = 0
        self.lags: list[int] = []

    def add(self, pairs: Iterable[Pair]) -> None:
        for pair in pairs:
            self.frames += 1
            if pair.lag is None:
                self.misses += 1
                continue
            self.lags.append(pair.lag)
            self.own_input += pair.lag == 0

    def all_reduce(self) -> None:
        """Combine all ranks' counts (every rank then reports the same); a no-op outside
        torch.distributed."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.frames, self.misses, self.own_input, self.lags))
        self.frames = sum(p[0] for p in parts)
        self.misses = sum(p[1] for p in parts)
        self.own_input = sum(p[2] for p in parts)
        self.lags = [lag for p in parts for lag in p[3]]

    def compute(self) -> dict[str, float | int]:
        answered = self.frames - self.misses
        lags = np.asarray(self.lags, dtype=np.float64)
        return {
            "frames": self.frames,
            "misses": self.misses,
            "miss_rate": self.misses / self.frames if self.frames else math.nan,
            "own_input_rate": self.own_input / self.frames if self.frames else math.nan,
            "lag_mean": float(lags.mean()) if answered else math.nan,
            "lag_p90": float(np.percentile(lags, 90)) if answered else math.nan,
        }


class StreamingMetric:
    """Accumulates streaming accuracy stream by stream; the streaming twin of
    :class:`streamdeq.tasks.Metric`.

    >>> metric = streaming_metric(model, fps=30)
    >>> for clip in clips:                       # one stream at a time
    ...     metric.update(clip.annotations, outputs_of[clip], arrivals=clip.timestamps)
    >>> metric.all_reduce()                      # under torchrun: every rank's streams
    >>> metric.compute()["sap50"]

    Args:
        scorer: the task's :class:`FrameScorer`.
        fps: frames per second of the streams (tau_i = i / fps unless arrival times are
            given; also the unit of ``eta``).
        eta: the query offset in frames (q_g = tau_g - eta / fps; -1 allows one frame of
            latency).
    """

    def __init__(self, scorer: FrameScorer, *, fps: float = 30.0, eta: float = 0.0) -> None:
        self.scorer = scorer
        self.fps = fps
        self.eta = eta
        self.diagnostics = PairingDiagnostics()

    @property
    def headline(self) -> str:
        return self.scorer.headline

    def update(
        self,
        annotations: Mapping[int, Any],
        outputs: Iterable[TimedOutput],
        *,
        arrivals: Sequence[float] | None = None,
        fps: float | None = None,
    ) -> list[Pair]:
        """Score one stream: ``annotations`` maps each annotated frame's index g in the stream
        to its annotation; ``outputs`` are the stream's outputs in any order; ``arrivals``
        are the frames' arrival times (i / fps when None); ``fps`` overrides the metric's for
        this stream. Returns the pairs, for inspection."""
        pairs = pair_stream(
            outputs,
            annotations.keys(),
            fps=self.fps if fps is None else fps,
            arrivals=arrivals,
            eta=self.eta,
        )
        for pair in pairs:
            target = annotations[pair.frame]
            if pair.output is None:
                self.scorer.miss(target)
            elif pair.output.output is None:
                raise SettingsError(
                    f"the output paired with frame {pair.frame} (from frame "
                    f"{pair.input_index}) holds no prediction, only timing; keep the outputs "
                    "to score them"
                )
            else:
                self.scorer.score(pair.output.output, target)
        self.diagnostics.add(pairs)
        return pairs

    def all_reduce(self) -> None:
        """Combine all ranks' streams under torch.distributed (every rank must call it)."""
        self.scorer.all_reduce()
        self.diagnostics.all_reduce()

    def compute(self) -> dict[str, float | int]:
        """The task's streaming columns, then the pairing's diagnostics."""
        return {**self.scorer.compute(), **self.diagnostics.compute()}


def streaming_metric(
    model: Any, *, task: str | Task | None = None, fps: float = 30.0, eta: float = 0.0
) -> StreamingMetric:
    """An empty :class:`StreamingMetric` for ``model``'s task (or the task named ``task``:
    its name or short name).

    Raises:
        SettingsError: no task, an unknown one, or one without a streaming scorer.
    """
    if task is None:
        chosen = task_of(model)
    elif isinstance(task, Task):
        chosen = task
    else:
        chosen = get_task(task)
    if chosen.name not in STREAMING_SCORERS:
        raise SettingsError(
            f"the {chosen.name} task has no streaming scorer (tasks with one: "
            f"{', '.join(STREAMING_SCORERS.names())}); add one with register_streaming_scorer"
        )
    return StreamingMetric(STREAMING_SCORERS.get(chosen.name)(model), fps=fps, eta=eta)


def score_streams(
    model: Any,
    annotations: Mapping[Hashable, Mapping[int, Any]],
    outputs: Iterable[TimedOutput],
    *,
    task: str | Task | None = None,
    fps: float = 30.0,
    eta: float = 0.0,
    arrivals: Mapping[Hashable, Sequence[float]] | None = None,
) -> dict[str, float | int]:
    """Streaming accuracy of a whole run in one call: ``annotations`` by stream ({g: target}),
    ``outputs`` of all streams mixed, ``arrivals`` by stream (i / fps when None)."""
    metric = streaming_metric(model, task=task, fps=fps, eta=eta)
    by_stream: dict[Hashable, list[TimedOutput]] = {stream: [] for stream in annotations}
    for output in outputs:
        if output.stream in by_stream:
            by_stream[output.stream].append(output)
    for stream, frames in annotations.items():
        stream_arrivals = None if arrivals is None else arrivals.get(stream)
        if arrivals is not None and stream_arrivals is None:
            raise SettingsError(f"no arrival times for stream {stream!r}")
        metric.update(frames, by_stream[stream], arrivals=stream_arrivals)
    metric.all_reduce()
    return metric.compute()


def _no_detections() -> dict[str, np.ndarray]:
    return {
        "boxes": np.zeros((0, 4), dtype=np.float64),
        "scores": np.zeros(0, dtype=np.float64),
        "labels": np.zeros(0, dtype=np.int64),
    }


def _class_mean(per_class: Mapping[int, np.ndarray], value: Callable[[np.ndarray], float]) -> float:
    values = [value(ap) for ap in per_class.values()]
    return float(np.mean(values)) if values else math.nan


__all__ = [
    "STREAMING_SCORERS",
    "DetectionStreamingScorer",
    "FrameScorer",
    "PairingDiagnostics",
    "ScorerFactory",
    "SegmentationStreamingScorer",
    "StreamingMetric",
    "register_streaming_scorer",
    "score_streams",
    "streaming_metric",
]
