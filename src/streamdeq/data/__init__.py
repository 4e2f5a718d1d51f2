"""Video in and out: lazy readers (files, image folders, streams), never-half-written sinks
(H.264 video, per-frame stats), drawing results onto frames, and the Cityscapes label tables."""

from __future__ import annotations

from .cityscapes import (
    CityscapesLayoutError,
    CityscapesReadError,
    CityscapesSequence,
    MissingFramesError,
)
from .errors import (
    CorruptVideoError,
    HardwareDecodingError,
    InputNotFoundError,
    InputNotReadableError,
    NoImagesError,
    NotAVideoError,
    OutputError,
    StatsSchemaError,
    StreamOpenError,
    VideoError,
)
from .hardware import HardwareDecoding
from .labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_INDEX,
    label_id_to_train_id_lut,
    train_id_to_label_id_lut,
)
from .overlay import colorize_segmentation, draw_boxes, draw_legend, overlay, overlay_segmentation
from .sinks import StatsWriter, VideoWriter
from .synthetic import (
    SceneSettings,
    SyntheticClip,
    SyntheticClips,
    SyntheticSegmentation,
    collate_frames,
    generate_clip,
    write_cityscapes_layout,
)
from .video import VideoFrame, VideoSource, open_video

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "IGNORE_INDEX",
    "CityscapesLayoutError",
    "CityscapesReadError",
    "CityscapesSequence",
    "CorruptVideoError",
    "HardwareDecoding",
    "HardwareDecodingError",
    "InputNotFoundError",
    "InputNotReadableError",
    "MissingFramesError",
    "NoImagesError",
    "NotAVideoError",
    "OutputError",
    "SceneSettings",
    "StatsSchemaError",
    "StatsWriter",
    "StreamOpenError",
    "SyntheticClip",
    "SyntheticClips",
    "SyntheticSegmentation",
    "VideoError",
    "VideoFrame",
    "VideoSource",
    "VideoWriter",
    "collate_frames",
    "colorize_segmentation",
    "draw_boxes",
    "draw_legend",
    "generate_clip",
    "label_id_to_train_id_lut",
    "open_video",
    "overlay",
    "overlay_segmentation",
    "train_id_to_label_id_lut",
    "write_cityscapes_layout",
]
