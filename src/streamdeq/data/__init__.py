"""Video in and out: lazy readers (files, image folders, streams), never-half-written sinks
(H.264 video, per-frame stats), drawing results onto frames, and the Cityscapes label tables."""

from __future__ import annotations

from .errors import (
    CorruptVideoError,
    InputNotFoundError,
    InputNotReadableError,
    NoImagesError,
    NotAVideoError,
    OutputError,
    StatsSchemaError,
    StreamOpenError,
    VideoError,
)
from .labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX, label_id_to_train_id_lut
from .overlay import colorize_segmentation, draw_boxes, draw_legend, overlay, overlay_segmentation
from .sinks import StatsWriter, VideoWriter
from .video import VideoFrame, VideoSource, open_video

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "IGNORE_INDEX",
    "CorruptVideoError",
    "InputNotFoundError",
    "InputNotReadableError",
    "NoImagesError",
    "NotAVideoError",
    "OutputError",
    "StatsSchemaError",
    "StatsWriter",
    "StreamOpenError",
    "VideoError",
    "VideoFrame",
    "VideoSource",
    "VideoWriter",
    "colorize_segmentation",
    "draw_boxes",
    "draw_legend",
    "label_id_to_train_id_lut",
    "open_video",
    "overlay",
    "overlay_segmentation",
]
