"""Whole clips: consecutive frames of one or more scenes, with hard cuts between scenes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import SettingsError
from .render import RenderedFrame, render_frame
from .scene import build_scene
from .settings import SceneSettings
from .world import Scene

_TRACKS_PER_SHOT = 1_000_000_000
"""Track ids of shot k start at k * this + 1, so ids never repeat across a cut."""


@dataclass(frozen=True)
class SyntheticClip:
    """A generated clip with its labels.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        labels: (T, H, W) uint8 Cityscapes train IDs 0..18, 255 = ignore (the ego bonnet).
        boxes: T arrays (N_t, 4) float32 xyxy pixel boxes of the visible things.
        box_classes: T arrays (N_t,) int64 train IDs (person 11, rider 12, car 13, truck 14,
            bus 15, bicycle 18).
        track_ids: T arrays (N_t,) int64; an object keeps its id while it stays in the shot.
        instances: (T, H, W) int64 track id drawn at each pixel (0 = background, and also poles,
            signs, lights and trees have ids here but no boxes).
        cuts: frame indices where a new scene starts (a hard shot change).
        seed: the seed the clip was generated from.
    """

    frames: np.ndarray
    labels: np.ndarray
    boxes: list[np.ndarray]
    box_classes: list[np.ndarray]
    track_ids: list[np.ndarray]
    instances: np.ndarray
    cuts: tuple[int, ...]
    seed: int

    def __len__(self) -> int:
        return len(self.frames)


def shot_seed(seed: int, shot: int) -> int:
    """Seed of the scene shown after the ``shot``-th cut (shot 0 is ``seed`` itself)."""
    if shot == 0:
        return seed
    return int(np.random.SeedSequence((seed, shot)).generate_state(1, np.uint64)[0] >> 1)


def scene_for_shot(seed: int, shot: int, settings: SceneSettings, num_frames: int) -> Scene:
    """The scene of one shot, long enough for ``num_frames`` frames."""
    if seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed}")
    return build_scene(
        shot_seed(seed, shot),
        settings,
        duration_s=num_frames / settings.fps,
        first_track_id=shot * _TRACKS_PER_SHOT + 1,
    )


def generate_clip(
    seed: int,
    num_frames: int,
    settings: SceneSettings = SceneSettings(),  # noqa: B008 - frozen, so sharing it is safe
    cuts: Sequence[int] = (),
) -> SyntheticClip:
    """Generate ``num_frames`` frames of a street drive, deterministically from ``seed``.

    Args:
        seed: non-negative integer; the same seed and settings give the same clip, bit for bit.
        num_frames: T >= 1.
        settings: size, motion, population and appearance.
        cuts: frame indices 0 < c < T where the clip jumps to a new scene (from a seed derived
            from ``seed``), as at a hard shot change. Frames before the first cut equal those of
            the clip without cuts.

    Raises:
        SettingsError: non-positive ``num_frames``, a negative seed, or cuts out of range.
    """
    if num_frames < 1:
        raise SettingsError(f"num_frames must be at least 1, got {num_frames}")
    cut_list = sorted(set(int(c) for c in cuts))
    if any(c <= 0 or c >= num_frames for c in cut_list):
        raise SettingsError(
            f"cuts must lie in 1..{num_frames - 1} (frame indices), got {list(cuts)}"
        )
    bounds = [0, *cut_list, num_frames]
    rendered: list[RenderedFrame] = []
    for shot, (start, stop) in enumerate(itertools.pairwise(bounds)):
        scene = scene_for_shot(seed, shot, settings, stop - start)
        rendered.extend(render_frame(scene, index) for index in range(stop - start))
    return SyntheticClip(
        frames=np.stack([r.image for r in rendered]),
        labels=np.stack([r.label for r in rendered]),
        boxes=[r.boxes for r in rendered],
        box_classes=[r.box_classes for r in rendered],
        track_ids=[r.track_ids for r in rendered],
        instances=np.stack([r.instance for r in rendered]),
        cuts=tuple(cut_list),
        seed=seed,
    )


def render_last_frame(seed: int, num_frames: int, settings: SceneSettings) -> RenderedFrame:
    """Frame ``num_frames - 1`` of the clip ``generate_clip(seed, num_frames, settings)``, alone.

    Frames are pure functions of (scene, index), so the annotated last frame of a clip costs one
    frame, not T.
    """
    return render_frame(scene_for_shot(seed, 0, settings, num_frames), num_frames - 1)
