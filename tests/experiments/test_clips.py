from __future__ import annotations

import numpy as np
import pytest

from streamdeq.data.synthetic import SceneSettings, generate_clip, write_cityscapes_layout
from streamdeq.errors import SettingsError
from streamdeq.experiments import (
    Clip,
    DetectionClip,
    cityscapes_clips,
    generated_clips,
    generated_detection_clips,
)

SCENE = SceneSettings(height=32, width=64)


def test_generated_clips_are_labelled_on_every_frame_and_reproducible():
    first, again = generated_clips(2, 3, settings=SCENE), generated_clips(2, 3, settings=SCENE)
    assert [sorted(c.labels) for c in first] == [[0, 1, 2], [0, 1, 2]]
    assert first[0].frames.shape == (3, 32, 64, 3)
    assert np.array_equal(first[1].frames, again[1].frames)
    assert not np.array_equal(first[0].frames, first[1].frames)


def test_cityscapes_clips_are_labelled_on_the_last_frame_only(tmp_path):
    scenes = [generate_clip(seed, 3, SCENE) for seed in (1, 3)]
    write_cityscapes_layout(tmp_path, scenes, split="val", city="testcity")
    clips = cityscapes_clips(tmp_path, "val", frames_per_clip=3)
    assert [sorted(c.labels) for c in clips] == [[2], [2]]
    assert np.array_equal(clips[0].frames, scenes[0].frames)
    assert np.array_equal(clips[0].label_at(2), scenes[0].labels[-1].astype(np.int64))


def test_a_label_for_a_frame_the_clip_lacks_is_rejected():
    with pytest.raises(SettingsError, match="label for frame 5"):
        Clip("c", np.zeros((2, 8, 8, 3), np.uint8), {5: np.zeros((8, 8), np.int64)})


def test_target_at_is_a_segmentation_clip_s_label_map():
    (clip,) = generated_clips(1, 2, settings=SCENE)
    assert clip.task == "segmentation"
    assert clip.target_at(1) is clip.labels[1] is clip.label_at(1)
    assert Clip("c", clip.frames, {1: clip.labels[1]}).target_at(0) is None


def test_target_at_is_a_detection_clip_s_boxes():
    (clip,) = generated_detection_clips(1, 2, settings=SCENE)
    assert isinstance(clip, DetectionClip) and clip.task == "detection"
    assert set(clip.target_at(1)) == {"boxes", "labels"}
    assert clip.target_at(1)["boxes"].shape[1:] == (4,)
