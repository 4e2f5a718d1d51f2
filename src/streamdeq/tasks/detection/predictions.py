"""Detection predictions of a run: one JSON-lines file (``.jsonl``), a header line, then per
frame ``{index, timestamp, boxes, scores, labels}`` with boxes as [x1, y1, x2, y2] in the
frame's pixels and labels as the model's class ids (the dataset's category ids).

Every box the detector keeps is written (not only those ``streamdeq run`` draws), since AP
needs the low-scoring ones too. Read back, each frame is the detections dict the streaming
scorer takes, which :func:`streamdeq.streaming.manifest.detections_to_results` turns into
entries of the COCO / sAP results format.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..predictions import JsonLinesSink, PredictionsError, RecordedPredictions, read_json_lines

SUFFIXES = (".jsonl", ".ndjson")

#: Decimals kept: boxes to 1/1000 of a pixel, scores to 1e-6 (float32 holds ~7 digits).
BOX_DECIMALS, SCORE_DECIMALS = 3, 6


class BoxesWriter:
    """Appends one line per frame to a :class:`JsonLinesSink`."""

    def __init__(self, model: Any, path: Path, header: Mapping[str, Any]) -> None:
        self.sink = JsonLinesSink(path, header, SUFFIXES)
        self.path, self.incomplete_path = self.sink.path, self.sink.incomplete_path
        self.replaced_incomplete = self.sink.replaced_incomplete

    def write(self, index: int, timestamp: float, size: tuple[int, int], output: Any) -> None:
        boxes, scores, labels = (_numpy(output[key]) for key in ("boxes", "scores", "labels"))
        self.sink.append(
            {
                "index": int(index),
                "timestamp": round(float(timestamp), 6),
                "boxes": np.round(boxes.astype(np.float64), BOX_DECIMALS).reshape(-1, 4).tolist(),
                "scores": np.round(scores.astype(np.float64), SCORE_DECIMALS).tolist(),
                "labels": labels.astype(np.int64).tolist(),
            }
        )

    def finish(self) -> Path | None:
        return self.sink.finish()

    def abort(self) -> None:
        self.sink.abort()


class BoxesPredictions:
    """The detection task's :class:`~streamdeq.tasks.predictions.PredictionsFormat`."""

    target = "a .jsonl file"

    def writer(self, model: Any, path: Path, header: Mapping[str, Any]) -> BoxesWriter:
        return BoxesWriter(model, path, header)

    def read(self, path: Path) -> RecordedPredictions:
        """A predictions ``.jsonl`` (finished, or the ``.incomplete.jsonl`` of a killed run);
        each output loads as ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,) numpy arrays."""
        path = Path(path)
        if path.is_dir():
            raise PredictionsError(
                f"{path} is a folder: detection predictions are a .jsonl file, and a folder "
                "holds segmentation predictions"
            )
        header, frames = read_json_lines(path, "detection")
        return RecordedPredictions(path, header, frames, lambda record: _detections(path, record))


def _detections(path: Path, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    try:
        boxes = np.asarray(record["boxes"], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(record["scores"], dtype=np.float64).reshape(-1)
        labels = np.asarray(record["labels"], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError) as error:
        raise PredictionsError(
            f"{path}: frame {record['index']} holds no (N, 4) boxes, scores and labels ({error})"
        ) from None
    if not len(boxes) == len(scores) == len(labels):
        raise PredictionsError(
            f"{path}: frame {record['index']} has {len(boxes)} boxes, {len(scores)} scores and "
            f"{len(labels)} labels"
        )
    return {"boxes": boxes, "scores": scores, "labels": labels}


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = ["BoxesPredictions", "BoxesWriter"]
