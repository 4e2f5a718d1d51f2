"""Drawing results onto frames: segmentation colours, boxes with labels, a class legend.

Everything takes and returns (H, W, 3) uint8 RGB numpy arrays and never changes its input. Text is
rasterised once per distinct string with Pillow (which matplotlib depends on) and cached, so
labelling boxes on every frame of a video costs a few array copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

# Bright, mutually distinct box colours (matplotlib's tab10): class c gets BOX_COLORS[c % 10].
BOX_COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def colorize_segmentation(
    labels: Any, palette: Sequence[tuple[int, int, int]] = CITYSCAPES_PALETTE
) -> np.ndarray:
    """Colour a label map: (H, W) integer class IDs -> (H, W, 3) uint8 RGB.

    IDs outside the palette (255 = ignore, negatives, anything >= len(palette)) become black.
    ``labels`` may be a numpy array or a tensor (moved to the CPU).
    """
    ids = _numpy(labels)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"expected an (H, W) integer label map, got {ids.shape} {ids.dtype}")
    table = _palette_table(tuple(map(tuple, palette)))
    if ids.dtype != np.uint8 or len(table) > 256:
        # negatives wrap to huge unsigned values, so one minimum sends every unknown ID to black
        ids = np.minimum(ids.astype(np.uintp, copy=False), len(table) - 1)
    return np.take(table, ids, axis=0)  # np.take: several times faster than table[ids]


def overlay(
    frame: np.ndarray, colors: np.ndarray, alpha: float = 0.5, mask: np.ndarray | None = None
) -> np.ndarray:
    """Blend ``colors`` over ``frame``: ``(1 - alpha) * frame + alpha * colors``.

    Args:
        frame, colors: (H, W, 3) uint8.
        alpha: weight of ``colors``, in [0, 1].
        mask: optional (H, W) bool: blend only there, keep ``frame`` elsewhere.
    """
    frame, colors = _image(frame), _image(colors)
    if frame.shape != colors.shape:
        raise ValueError(f"frame {frame.shape} and colours {colors.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    weight = round(alpha * 256)  # integer blending: exact at 0 and 1, faster than float
    blended = (frame.astype(np.uint16) * (256 - weight) + colors.astype(np.uint16) * weight) >> 8
    blended = blended.astype(np.uint8)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.all():  # model predictions have no ignored pixels: skip the copy
            np.copyto(blended, frame, where=~mask[..., None])
    return blended


def overlay_segmentation(
    frame: np.ndarray,
    labels: Any,
    alpha: float = 0.5,
    palette: Sequence[tuple[int, int, int]] = CITYSCAPES_PALETTE,
) -> np.ndarray:
    """Colour ``labels`` (H, W) and blend them over ``frame`` (H, W, 3); ignored pixels stay as
    they were."""
    ids = _numpy(labels)
    if ids.shape != np.shape(frame)[:2]:
        raise ValueError(f"labels {ids.shape} do not match the frame {np.shape(frame)[:2]}")
    valid = (ids >= 0) & (ids < len(palette))
    return overlay(frame, colorize_segmentation(ids, palette), alpha, mask=valid)


def draw_boxes(
    frame: np.ndarray,
    boxes: Any,
    labels: Any = None,
    scores: Any = None,
    class_names: Sequence[str] | None = None,
    *,
    thickness: int = 2,
    font_size: int = 12,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draw rectangles with optional "name 0.87" captions; returns a new frame.

    Args:
        frame: (H, W, 3) uint8.
        boxes: (N, 4) pixel coordinates ``x0, y0, x1, y1`` (x1, y1 exclusive).
        labels: (N,) class IDs (colour each box by class and name it), or None.
        scores: (N,) confidences shown after the name, or None.
        class_names: names indexed by class ID; None shows the ID.
        thickness: outline width in pixels, drawn inside the box.
        color: one colour for every box (default: by class, from :data:`BOX_COLORS`).

    The outline lies inside each box; a caption sits just above the box (inside its top edge
    when the box touches the top of the frame).
    """
    out = _image(frame).copy()
    boxes = _numpy(boxes).astype(np.float64).reshape(-1, 4)
    labels = None if labels is None else _numpy(labels).reshape(-1)
    scores = None if scores is None else _numpy(scores).reshape(-1)
    for i, box in enumerate(boxes):
        label = None if labels is None else int(labels[i])
        box_color = color or BOX_COLORS[(label or 0) % len(BOX_COLORS)]
        corners = _clip_box(box, out.shape)
        if corners is None:
            continue
        _draw_outline(out, corners, box_color, thickness)
        caption = _caption(label, None if scores is None else float(scores[i]), class_names)
        if caption:
            _draw_caption(out, caption, corners, box_color, font_size)
    return out


def draw_legend(
    frame: np.ndarray,
    class_ids: Sequence[int] | None = None,
    class_names: Sequence[str] = CITYSCAPES_CLASSES,
    palette: Sequence[tuple[int, int, int]] = CITYSCAPES_PALETTE,
    *,
    font_size: int = 11,
) -> np.ndarray:
    """A colour key in the top-left corner: a swatch and a name per class; returns a new frame.

    ``class_ids`` picks the classes to list (e.g. those present in the frame); default all.
    """
    out = _image(frame).copy()
    ids = range(len(class_names)) if class_ids is None else class_ids
    row_height, margin = font_size + 6, 4
    for row, class_id in enumerate(ids):
        y = margin + row * row_height
        if y + row_height > out.shape[0]:
            break
        text = _text_mask(class_names[class_id], font_size)
        width = row_height + text.shape[1] + 2 * margin
        _blend_rect(out, (0, y, min(width + margin, out.shape[1]), y + row_height), (0, 0, 0), 0.6)
        swatch = row_height - 4
        _fill(out, (margin, y + 2, margin + swatch, y + 2 + swatch), palette[class_id])
        _blit_text(
            out, text, margin + row_height, y + (row_height - text.shape[0]) // 2, (255,) * 3
        )
    return out


def _clip_box(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    if not np.all(np.isfinite(box)):
        return None
    x0, y0, x1, y1 = np.round(box).astype(int)
    x0, x1 = max(x0, 0), min(x1, shape[1])
    y0, y1 = max(y0, 0), min(y1, shape[0])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _draw_outline(
    out: np.ndarray, corners: tuple[int, int, int, int], color: tuple[int, int, int], width: int
) -> None:
    x0, y0, x1, y1 = corners
    width = max(1, min(width, (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2))
    out[y0 : y0 + width, x0:x1] = color
    out[y1 - width : y1, x0:x1] = color
    out[y0:y1, x0 : x0 + width] = color
    out[y0:y1, x1 - width : x1] = color


def _caption(label: int | None, score: float | None, class_names: Sequence[str] | None) -> str:
    parts = []
    if label is not None:
        known = class_names is not None and 0 <= label < len(class_names)
        parts.append(class_names[label] if known else str(label))
    if score is not None:
        parts.append(f"{score:.2f}")
    return " ".join(parts)


def _draw_caption(
    out: np.ndarray,
    caption: str,
    corners: tuple[int, int, int, int],
    color: tuple[int, int, int],
    font_size: int,
) -> None:
    text = _text_mask(caption, font_size)
    height, width = text.shape[0] + 2, text.shape[1] + 4
    x0, y0 = corners[0], corners[1] - height
    if y0 < 0:  # no room above: inside the top of the box
        y0 = corners[1]
    _fill(out, (x0, y0, x0 + width, y0 + height), color)
    ink = (0, 0, 0) if _luminance(color) > 140 else (255, 255, 255)
    _blit_text(out, text, x0 + 2, y0 + 1, ink)


def _fill(out: np.ndarray, rect: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = _clip_rect(rect, out.shape)
    out[y0:y1, x0:x1] = color


def _blend_rect(
    out: np.ndarray, rect: tuple[int, int, int, int], color: tuple[int, int, int], alpha: float
) -> None:
    x0, y0, x1, y1 = _clip_rect(rect, out.shape)
    region = out[y0:y1, x0:x1]
    region[:] = (region * (1 - alpha) + np.asarray(color) * alpha).astype(np.uint8)


def _blit_text(
    out: np.ndarray, mask: np.ndarray, x: int, y: int, color: tuple[int, int, int]
) -> None:
    """Blend ``color`` into ``out`` with the (h, w) coverage ``mask`` placed at (x, y)."""
    x0, y0, x1, y1 = _clip_rect((x, y, x + mask.shape[1], y + mask.shape[0]), out.shape)
    if x1 <= x0 or y1 <= y0:
        return
    alpha = mask[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = out[y0:y1, x0:x1]
    region[:] = (region * (1 - alpha) + np.asarray(color, np.float32) * alpha + 0.5).astype(
        np.uint8
    )


def _clip_rect(rect: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, ...]:
    x0, y0, x1, y1 = rect
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def _luminance(color: tuple[int, int, int]) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


@lru_cache(maxsize=1024)
def _text_mask(text: str, font_size: int) -> np.ndarray:
    """(h, w) float32 coverage in [0, 1] of ``text`` drawn in Pillow's default font."""
    from PIL import Image, ImageDraw

    font = _font(font_size)
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (max(right - left, 1), max(bottom - top, 1)))
    ImageDraw.Draw(canvas).text((-left, -top), text, fill=255, font=font)
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    mask.setflags(write=False)  # shared by the cache
    return mask


@lru_cache(maxsize=8)
def _font(font_size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=font_size)  # scalable when Pillow has FreeType
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()  # the fixed bitmap font


@lru_cache(maxsize=16)
def _palette_table(palette: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """(max(len + 1, 256), 3) uint8: the palette, then black for every other ID."""
    table = np.zeros((max(len(palette) + 1, 256), 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    table.setflags(write=False)
    return table


def _numpy(array: Any) -> np.ndarray:
    """A numpy view of an array or a (CPU or device) tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _image(frame: Any) -> np.ndarray:
    image = _numpy(frame)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image
