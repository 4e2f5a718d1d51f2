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


#: A task's summary function: the outputs of one tick's streams -> their summaries, in order.
Summarizer = Callable[[list[Any]], list[dict[str, Any]]]


def summarizer_for(task: str | None, model: Any) -> Summarizer:
    """The summary function of ``task``'s outputs (each {} for a task without one).

    It takes a whole tick's outputs at once. Segmentation outputs are summarised together:
    stream by stream, it cost a few dozen small tensor operations and a device->host transfer
    per stream, which with many streams (and the GIL shared with their source threads) came to
    most of a tick. Detection outputs (a few boxes each) are still summarised one by one."""
    if task == "segmentation":
        names = _class_names(model)
        return lambda outputs: segmentation_summaries(outputs, names)
    if task == "detection":
        config = model.config
        names = dict(zip([int(i) for i in config.class_ids], config.class_names, strict=True))
        return lambda outputs: [detection_summary(output, names) for output in outputs]
    return lambda outputs: [{} for _ in outputs]


def segmentation_summaries(outputs: list[torch.Tensor], names: list[str]) -> list[dict[str, Any]]:
    """(classes, h, w) logits each -> {"classes": [{"name", "share"}]}: the TOP_CLASSES classes
    covering most of the output, by pixel share (at the output's resolution; ties: the lower
    class index first).

    Outputs of one shape are counted together on their device (argmax, then one count over
    all of them, each output's labels offset by its row), and only the (outputs x classes)
    counts cross to the host: a fixed number of operations per shape, whatever the number of
    streams."""
    counts: list[np.ndarray | None] = [None] * len(outputs)
    groups: dict[tuple, list[int]] = {}
    for i, logits in enumerate(outputs):
        groups.setdefault((tuple(logits.shape), logits.device, logits.dtype), []).append(i)
    for (shape, _, _), rows in groups.items():
        classes = shape[0]
        with torch.no_grad():
            logits = torch.stack([outputs[i] for i in rows])
            labels = logits.argmax(dim=1).flatten(1)
            offsets = torch.arange(len(rows), device=labels.device).unsqueeze(1) * classes
            # a scatter-add, not torch.bincount: bincount sizes its output from the data,
            # which on a GPU is a device->host synchronisation of its own
            index = (labels + offsets).flatten()
            binned = torch.zeros(len(rows) * classes, dtype=torch.long, device=labels.device)
            binned.scatter_add_(0, index, torch.ones_like(index))
            table = binned.view(len(rows), classes).cpu().numpy()
        for k, i in enumerate(rows):
            counts[i] = table[k]
    return [_class_shares(c, names) for c in counts]


def segmentation_summary(logits: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """One output's summary (see :func:`segmentation_summaries`)."""
    return segmentation_summaries([logits], names)[0]


def _class_shares(counts: np.ndarray, names: list[str]) -> dict[str, Any]:
    shares = counts / max(int(counts.sum()), 1)
    top = np.argsort(-shares, kind="stable")[:TOP_CLASSES]
    return {
        "classes": [
            {"name": _name(names, int(k)), "share": round(float(shares[k]), 4)}
            for k in top
            if shares[k] > 0
        ]
    }


def detection_summary(output: dict, names: dict[int, str]) -> dict[str, Any]:
    """A detector's output -> {"boxes": [{"label", "score", "box": [x0, y0, x1, y1]}]}: the
    best MAX_BOXES boxes scoring at least the renderer's threshold (the boxes it draws)."""
    scores = output["scores"].detach().float().cpu().numpy()
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= DEFAULT_MIN_SCORE][:MAX_BOXES]
    boxes = output["boxes"].detach().float().cpu().numpy()[order].tolist()
    labels = output["labels"].detach().cpu().numpy()[order].tolist()
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
