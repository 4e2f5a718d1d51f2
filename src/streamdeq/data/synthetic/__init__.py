"""Procedural street-scene videos labelled in the 19 Cityscapes classes.

A seed draws a street (camera, road, sidewalks, facades, cars, people, poles, signs, lights,
trees, colours and lighting); frames are drawn from it by a pinhole camera that drives and pans,
with hard cuts to new scenes on request. Labels, instance maps and boxes come from the same masks
as the pixels. See :func:`generate_clip` and the datasets :class:`SyntheticSegmentation` (single
annotated frames) and :class:`SyntheticClips` (clips ending at the annotated frame).
"""

from __future__ import annotations

from .clip import SyntheticClip, generate_clip, render_last_frame, shot_seed
from .dataset import SyntheticClips, SyntheticSegmentation, clip_seed, collate_frames
from .layout import write_cityscapes_layout, write_synthetic_split
from .render import RenderedFrame, render_frame
from .scene import build_scene
from .settings import SceneSettings
from .world import Scene

__all__ = [
    "RenderedFrame",
    "Scene",
    "SceneSettings",
    "SyntheticClip",
    "SyntheticClips",
    "SyntheticSegmentation",
    "build_scene",
    "clip_seed",
    "collate_frames",
    "generate_clip",
    "render_frame",
    "render_last_frame",
    "shot_seed",
    "write_cityscapes_layout",
    "write_synthetic_split",
]
