"""What a served result says about its frame in a few numbers, and its overlay as a JPEG.

Why summaries: the page and the API show every stream's result many times a second; a class
share table or a list of boxes is a few hundred bytes, the logits are not. Overlays are drawn
and encoded only when someone asks for them (see :class:`OverlayCache`).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..tasks import FrameRenderer
from ..tasks.detection.render import DEFAULT_MIN_SCORE

#: Classes listed in a segmentation summary, boxes in a detection summary.
TOP_CLASSES, MAX_BOXES = 5, 50


def summarizer_for(task: str | None, model: Any) -> Callable[[Any], dict[str, Any]]:
    """The summary function of ``task``'s outputs ({} for a task without one)."""
    if task == "segmentation":
        names = _class_names(model)
        return lambda output: segmentation_summary(output, names)
    if task == "detection":
        config = model.config
        names = dict(zip([int(i) for i in config.class_ids], config.class_names, strict=True))
        return lambda output: detection_summary(output, names)
    return lambda output: {}


def segmentation_summary(logits: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """(classes, h, w) logits -> {"classes": [{"name", "share"}]}: the TOP_CLASSES classes
    covering most of the output, by pixel share (at the output's resolution)."""
    labels = logits.detach().argmax(dim=0).flatten().cpu()
    counts = torch.bincount(labels, minlength=logits.shape[0]).double()
    shares = counts / max(labels.numel(), 1)
    top = torch.argsort(shares, descending=True)[:TOP_CLASSES].tolist()
    return {
        "classes": [
            {"name": _name(names, k), "share": round(float(shares[k]), 4)}
            for k in top
            if shares[k] > 0
        ]
    }


def detection_summary(output: dict, names: dict[int, str]) -> dict[str, Any]:
    """A detector's output -> {"boxes": [{"label", "score", "box": [x0, y0, x1, y1]}]}: the
    best MAX_BOXES boxes scoring at least the renderer's threshold (the boxes it draws)."""
    scores = output["scores"].detach().float().cpu()
    order = torch.argsort(scores, descending=True)
    order = order[scores[order] >= DEFAULT_MIN_SCORE][:MAX_BOXES]
    boxes = output["boxes"].detach().float().cpu()[order].tolist()
    labels = output["labels"].detach().cpu()[order].tolist()
    return {
        "boxes": [
            {
                "label": names.get(int(label), f"class {int(label)}"),
                "score": round(float(score), 4),
                "box": [round(v, 1) for v in box],
            }
            for label, score, box in zip(labels, scores[order].tolist(), boxes, strict=True)
        ]
    }


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class OverlayCache:
    """One stream lane's latest overlay, drawn and encoded on first request only.

    Why lazy: drawing and JPEG encoding cost about as much as a small model's frame; an
    unwatched stream should not pay it. Each result is drawn at most once, however many
    clients ask for it."""

    def __init__(self, renderer: FrameRenderer | None, quality: int) -> None:
        self._renderer = renderer
        self._quality = quality
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, Any] | None = None
        self._jpeg: bytes | None = None

    def offer(self, frame: np.ndarray, output: Any) -> None:
        """A new result: its frame and output replace the last (nothing is drawn yet)."""
        with self._lock:
            self._pending = (frame, output)

    def jpeg(self) -> bytes | None:
        """The latest result's overlay (None before the first result, or without a
        renderer)."""
        with self._lock:
            if self._pending is not None and self._renderer is not None:
                frame, output = self._pending
                self._pending = None
                image, _ = self._renderer.render(frame, output)
                self._jpeg = encode_jpeg(image, self._quality)
            return self._jpeg


def _class_names(model: Any) -> list[str]:
    info = getattr(model, "pretrained_info", None)
    names = getattr(info, "class_names", None)
    if names:
        return list(names)
    count = int(getattr(model.config, "num_classes", 0))
    return [f"class {k}" for k in range(count)]


def _name(names: list[str], k: int) -> str:
    return names[k] if k < len(names) else f"class {k}"
