"""``streamdeq score``: a recorded ``streamdeq run`` scored as an online system.

Streaming perception (Li, Wang and Ramanan, "Towards Streaming Perception", ECCV 2020) asks how
good the answer is about the world *now*, given that computing it took time: annotated frame g,
arriving at tau_g, is answered by the latest output finished by tau_g - eta / fps
(:mod:`streamdeq.streaming.pairing`), and a frame nothing answered yet is a miss (scored as an
empty prediction: :mod:`streamdeq.streaming.metrics`).

>>> result = score_run(ScoreOptions(Path("stats.csv"), Path("preds"), Path("gt_root")))
>>> result["streaming"]["smiou"], result["offline"]["miou"], result["streaming"]["lag_mean"]

The run's timeline comes from its stats (:mod:`streamdeq.app.recorded`): for a file, finish
times are simulated from the recorded step latencies at the source's rate under the "every
frame" scheduler a file run has, f_k = max(tau_k, f_{k-1}) + latency_k; for a live source, the
recorded ``finish_s``. Other schedulers need the model run again (``streamdeq experiment
streaming``). Offline accuracy, beside it, scores each annotated frame with its own output
(a frame the run never processed counts as a miss there too).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.sinks import json_safe
from ..errors import SettingsError
from ..streaming.metrics import (
    DetectionStreamingScorer,
    FrameScorer,
    SegmentationStreamingScorer,
    StreamingMetric,
)
from ..streaming.records import TimedOutput
from ..tasks import get_task
from ..tasks.predictions import PredictionsError, RecordedPredictions, read_json_lines
from ..validation import check_real
from .annotations import check_task, load_annotations
from .recorded import RecordedFrame, arrival_times, finish_times, is_live, read_stats
from .run_options import check_fps

#: The ``format`` field of a score result.
SCORE_FORMAT = "streamdeq-score/1"

#: Offline names of the streaming scorers' columns (the rest keep theirs).
OFFLINE_NAMES = {
    "smiou": "miou",
    "spixel_accuracy": "pixel_accuracy",
    "sap": "ap",
    "sap50": "ap50",
    "sap75": "ap75",
}
#: Streaming columns with no offline twin.
STREAMING_ONLY = ("miou_covered",)

#: (label, streaming column, offline column) of the printed comparison, per task.
SHOWN = {
    "segmentation": (
        ("mIoU", "smiou", "miou"),
        ("pixel accuracy", "spixel_accuracy", "pixel_accuracy"),
    ),
    "detection": (("AP", "sap", "ap"), ("AP50", "sap50", "ap50"), ("AP75", "sap75", "ap75")),
}


@dataclass(frozen=True)
class ScoreOptions:
    """What ``streamdeq score`` was asked to do.

    Attributes:
        stats: the run's ``--stats`` file.
        predictions: the run's ``--predictions`` (folder or .jsonl).
        annotations: ground truth (:mod:`streamdeq.app.annotations`).
        fps: arrivals at k / fps instead of the recorded timestamps (files only).
        eta: the query offset in frames, q_g = tau_g - eta / fps (0; -1 allows one frame).
        sequence: which sequence of the annotations the run covers.
        split: the annotations' split (default: the only one, else "val").
        out: write the result as JSON here.
    """

    stats: Path
    predictions: Path
    annotations: Path
    fps: float | None = None
    eta: float = 0.0
    sequence: str | None = None
    split: str | None = None
    out: Path | None = None

    def __post_init__(self) -> None:
        check_fps(self.fps)
        check_real("eta", self.eta, label="--eta")
        if self.out is not None and Path(self.out).suffix.lower() != ".json":
            raise SettingsError(f"--out {self.out}: the result is written as .json")


def read_predictions(path: Path) -> RecordedPredictions:
    """A run's predictions, read by their task's format (named in their header)."""
    path = Path(path).expanduser()
    log = path / "index.jsonl" if path.is_dir() else path
    try:
        with log.open(encoding="utf-8") as file:
            header = json.loads(file.readline() or "null")
    except FileNotFoundError:
        raise PredictionsError(f"{path}: no such predictions file or folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("task"), str):
        read_json_lines(log, "?")  # raises the format's own message
    task = get_task(header["task"])
    if task.predictions is None:
        raise PredictionsError(f"{path}: the {task.name} task has no predictions format")
    return task.predictions.read(path)


def score_run(options: ScoreOptions) -> dict[str, Any]:
    """Score a recorded run (module docstring); returns the result (what ``--out`` holds) and
    writes it to ``options.out`` if given.

    Raises:
        StreamDEQError: every bad input, in one line: unreadable or mismatched stats and
            predictions, annotations of another task or stream, bad options.
    """
    frames = read_stats(options.stats)
    predictions = read_predictions(options.predictions)
    annotations = load_annotations(
        options.annotations, sequence=options.sequence, split=options.split
    )
    check_task(annotations, predictions.task, options.annotations)
    frames = _common_frames(frames, predictions, options)
    live = is_live(frames)
    if live and options.fps is not None:
        raise SettingsError(
            "--fps cannot re-time a live run: its finish times were measured against its "
            "timestamps; leave --fps out"
        )
    fps = options.fps or float(predictions.header.get("fps") or 0) or _fps_of(frames)
    last = frames[-1].index
    scored = {g: target for g, target in annotations.frames.items() if g <= last}
    if not scored:
        raise SettingsError(
            f"none of the {len(annotations.frames)} annotated frames (from "
            f"{min(annotations.frames, default='-')}) is among the run's frames 0..{last}; "
            "is it the right --sequence?"
        )
    arrivals = arrival_times(frames, last + 1, fps, use_timestamps=options.fps is None)
    finishes, clamped = finish_times(frames, arrivals)
    outputs = [
        TimedOutput(0, f.index, finishes[f.index], f.index, latency_ms=f.latency_ms) for f in frames
    ]
    streaming = StreamingMetric(_scorer(predictions), fps=fps, eta=options.eta)
    pairs = streaming.update(scored, outputs, arrivals=arrivals)
    result = {
        "format": SCORE_FORMAT,
        "task": predictions.task,
        "model": predictions.header.get("model"),
        "source": predictions.header.get("source"),
        "inputs": {
            "stats": str(options.stats),
            "predictions": str(options.predictions),
            "annotations": str(options.annotations),
            "annotations_kind": annotations.kind,
            "sequence": annotations.sequence,
        },
        "rule": _rule(options, fps, live),
        "frames": {
            "recorded": len(frames),
            "annotated": len(annotations.frames),
            "scored": len(scored),
            "beyond_run": len(annotations.frames) - len(scored),
            "finish_moved_to_arrival": clamped,
        },
        "streaming": json_safe(streaming.compute()),
        "offline": json_safe(_offline(predictions, scored)),
        "pairs": [
            {
                "frame": pair.frame,
                "input_index": pair.input_index,
                "finish_s": None if pair.output is None else round(pair.output.finish_s, 9),
            }
            for pair in pairs
        ],
        "measured_on": predictions.header.get("measured_on"),
        "scored_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if options.out is not None:
        Path(options.out).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result


def score_lines(result: Mapping[str, Any]) -> list[str]:
    """The result in a few lines: streaming and offline accuracy side by side, the pairing's
    diagnostics, and how the finish times were obtained."""
    streaming, offline, frames = result["streaming"], result["offline"], result["frames"]
    rule = result["rule"]
    lines = [
        f"{frames['scored']} annotated frames of {frames['recorded']} recorded "
        f"({result['task']}, {result['model']}); eta {rule['eta']:g} frames at {rule['fps']:g} fps",
        f"{'':16}{'streaming':>10}{'offline':>10}",
    ]
    for label, streaming_key, offline_key in SHOWN.get(result["task"], ()):
        offline_value = offline.get(offline_key) if offline_key else None
        lines.append(
            f"{label:16}{_number(streaming.get(streaming_key)):>10}{_number(offline_value):>10}"
        )
    lines.append(
        f"misses {streaming['misses']} of {streaming['frames']} "
        f"({_percent(streaming['miss_rate'])}), own input {_percent(streaming['own_input_rate'])}, "
        f"lag mean {_number(streaming['lag_mean'], 2)} frames, p90 {_number(streaming['lag_p90'], 2)}"
    )
    lines.append(f"finish times: {rule['finish_times']}")
    if frames["beyond_run"]:
        lines.append(
            f"note: {frames['beyond_run']} annotated frames come after the run's last frame "
            "and were not scored"
        )
    return lines


# ----------------------------------------------------------------------------- pieces


class _RecordedScorer:
    """A streaming scorer fed with input indices: each frame's recorded prediction is loaded
    only when a pair needs it (a long run's label maps do not fit in memory at once)."""

    def __init__(self, inner: FrameScorer, load: Callable[[int], Any]) -> None:
        self.inner, self.load = inner, load
        self.headline = inner.headline

    def score(self, output: Any, target: Any) -> None:
        self.inner.score(self.load(output), target)

    def miss(self, target: Any) -> None:
        self.inner.miss(target)

    def all_reduce(self) -> None:
        self.inner.all_reduce()

    def compute(self) -> dict[str, float | int]:
        return self.inner.compute()


def _scorer(predictions: RecordedPredictions) -> _RecordedScorer:
    if predictions.task == "segmentation":
        classes = predictions.header.get("num_classes")
        if not isinstance(classes, int) or classes < 1:
            raise PredictionsError(f"{predictions.path}: the header names no num_classes")
        # recorded label maps: the scorer takes them as they are (at the annotation's size)
        inner: FrameScorer = SegmentationStreamingScorer(classes)
    elif predictions.task == "detection":
        inner = DetectionStreamingScorer()
    else:
        raise SettingsError(f"scoring {predictions.task} predictions is not supported")
    return _RecordedScorer(inner, predictions.output)


def _offline(predictions: RecordedPredictions, scored: Mapping[int, Any]) -> dict[str, Any]:
    """Each annotated frame against its own output (a miss when the run never processed it)."""
    scorer = _scorer(predictions)
    for g in sorted(scored):
        if g in predictions.frames:
            scorer.score(g, scored[g])
        else:
            scorer.miss(scored[g])
    values = scorer.compute()
    return {OFFLINE_NAMES.get(k, k): v for k, v in values.items() if k not in STREAMING_ONLY}


def _common_frames(
    frames: list[RecordedFrame], predictions: RecordedPredictions, options: ScoreOptions
) -> list[RecordedFrame]:
    """The stats rows that have a prediction: all of them, but for the last frame of a killed
    run (written to one file and not yet to the other). Timestamps must agree."""
    recorded, predicted = {f.index for f in frames}, set(predictions.frames)
    differ = recorded ^ predicted
    if differ and differ != {max(recorded | predicted)}:
        raise SettingsError(
            f"{options.stats} has {len(recorded)} frames and {options.predictions} "
            f"{len(predicted)}, differing at frame {min(differ)}: they are not of the same run"
        )
    common = [f for f in frames if f.index in predicted]
    for frame in common:
        recorded_at = float(predictions.frames[frame.index]["timestamp"])
        if abs(recorded_at - frame.timestamp) > 1e-5:
            raise SettingsError(
                f"frame {frame.index} is at {frame.timestamp} s in {options.stats} but at "
                f"{recorded_at} s in {options.predictions}: they are not of the same run"
            )
    if not common:
        raise SettingsError(f"{options.predictions} holds no frame of {options.stats}")
    return common


def _fps_of(frames: list[RecordedFrame]) -> float:
    """The rate the timestamps show (frames per second over the run), 25 for a single frame."""
    span = frames[-1].timestamp - frames[0].timestamp
    steps = frames[-1].index - frames[0].index
    return steps / span if span > 0 else 25.0


def _rule(options: ScoreOptions, fps: float, live: bool) -> dict[str, Any]:
    if live:
        timing = "recorded (live source: finish_s, wall time on the frames' clock)"
    else:
        timing = (
            "simulated from the recorded step latencies at the source's rate, every frame in "
            "order: f_k = max(tau_k, f_(k-1)) + latency_k"
        )
    return {
        "name": "streaming (Li, Wang & Ramanan, ECCV 2020)",
        "pairing": "latest output with f_j <= tau_g - eta / fps; none: a miss, scored empty",
        "eta": options.eta,
        "fps": fps,
        "arrivals": "k / fps" if options.fps is not None else "recorded timestamps",
        "finish_times": timing,
        "clock": "real" if live else "simulated",
    }


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


__all__ = ["SCORE_FORMAT", "ScoreOptions", "read_predictions", "score_lines", "score_run"]
