"""The street-scene generator: determinism, label/image/box consistency, cuts, datasets, layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamdeq.app import cli
from streamdeq.data.cityscapes import CityscapesSequence
from streamdeq.data.errors import OutputError
from streamdeq.data.synthetic import (
    SceneSettings,
    SyntheticClips,
    SyntheticSegmentation,
    clip_seed,
    collate_frames,
    generate_clip,
    write_cityscapes_layout,
    write_synthetic_split,
)
from streamdeq.errors import SettingsError

SMALL = SceneSettings(height=64, width=128)
FLAT = SceneSettings(height=64, width=128, texture=0.0, pixel_noise=0.0)
THINGS = {11, 12, 13, 14, 15, 18}


@pytest.fixture(scope="module")
def clip():
    return generate_clip(3, 8, SMALL)


def test_same_seed_gives_the_same_clip_bit_for_bit(clip):
    again = generate_clip(3, 8, SMALL)
    assert np.array_equal(clip.frames, again.frames)
    assert np.array_equal(clip.labels, again.labels)
    for ours, theirs in zip(clip.boxes, again.boxes):
        assert np.array_equal(ours, theirs)


def test_different_seeds_give_different_clips(clip):
    other = generate_clip(4, 8, SMALL)
    assert np.abs(clip.frames.astype(int) - other.frames).mean() > 10
    assert (clip.labels != other.labels).mean() > 0.05


def test_clip_arrays_have_the_contract_shapes_and_types(clip):
    assert clip.frames.shape == (8, 64, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.labels.shape == (8, 64, 128) and clip.labels.dtype == np.uint8
    assert len(clip.boxes) == len(clip.box_classes) == len(clip.track_ids) == 8
    for boxes, classes, tracks in zip(clip.boxes, clip.box_classes, clip.track_ids):
        assert boxes.dtype == np.float32 and boxes.shape == (len(classes), 4)
        assert classes.dtype == np.int64 and tracks.dtype == np.int64


def test_labels_are_train_ids_or_ignore(clip):
    assert set(np.unique(clip.labels)) <= set(range(19)) | {255}


def test_every_box_is_the_tight_box_of_its_objects_visible_pixels():
    clip = generate_clip(11, 6, SMALL)
    assert sum(len(b) for b in clip.boxes) > 0
    for t in range(len(clip)):
        for box, cls, track in zip(clip.boxes[t], clip.box_classes[t], clip.track_ids[t]):
            mask = clip.instances[t] == track
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert np.all(clip.labels[t][mask] == cls)


def test_every_visible_thing_large_enough_has_a_box():
    clip = generate_clip(12, 4, SMALL)
    for t in range(len(clip)):
        boxed = set(clip.track_ids[t].tolist())
        ids, counts = np.unique(clip.instances[t], return_counts=True)
        for track, count in zip(ids, counts):
            cls = int(clip.labels[t][clip.instances[t] == track][0])
            if track and cls in THINGS and count >= SMALL.min_box_pixels:
                assert track in boxed


def test_each_instance_has_one_class():
    clip = generate_clip(13, 4, SMALL)
    for t in range(len(clip)):
        for track in np.unique(clip.instances[t])[1:]:
            assert len(np.unique(clip.labels[t][clip.instances[t] == track])) == 1


def test_label_boundaries_are_visible_in_the_image():
    """Where two neighbouring pixels differ in class, the flat-shaded image differs too: pixels
    and labels come from the same masks (a stray label would sit on an unchanged colour)."""
    clip = generate_clip(5, 3, FLAT)
    labels, frames = clip.labels.astype(int), clip.frames.astype(int)
    for axis in (1, 2):
        a, b = np.moveaxis(labels, axis, 0), np.moveaxis(frames, axis, 0)
        boundary = (a[1:] != a[:-1]) & (a[1:] != 255) & (a[:-1] != 255)
        differs = np.abs(b[1:] - b[:-1]).sum(-1) > 0
        assert boundary.sum() > 100
        assert differs[boundary].mean() > 0.995


def test_class_colours_vary_between_clips():
    """No class has one constant colour: a model has to use shape and context."""
    road_means = []
    for seed in range(6):
        clip = generate_clip(seed, 1, SMALL)
        road_means.append(clip.frames[0][clip.labels[0] == 0].mean(0))
    assert np.std(np.array(road_means), axis=0).max() > 6


def test_camera_motion_moves_the_scene():
    moving = SceneSettings(height=64, width=128, ego_speed=(12.0, 12.0))
    clip = generate_clip(6, 6, moving)
    assert (clip.labels[0] != clip.labels[5]).mean() > 0.01


def test_frames_before_a_cut_equal_the_uncut_clip_and_the_cut_changes_the_scene():
    plain = generate_clip(7, 6, SMALL)
    cut = generate_clip(7, 6, SMALL, cuts=(3,))
    assert cut.cuts == (3,)
    assert np.array_equal(cut.frames[:3], plain.frames[:3])
    within = (cut.labels[2] != cut.labels[1]).mean()
    across = (cut.labels[3] != cut.labels[2]).mean()
    assert across > max(4 * within, 0.05)
    assert not set(np.concatenate(cut.track_ids[:3]).tolist()) & set(
        np.concatenate(cut.track_ids[3:]).tolist()
    )


def test_a_shorter_clip_is_the_start_of_a_longer_one():
    """The street does not depend on the clip length, so frame t is the same in any clip."""
    fast = SceneSettings(height=32, width=64, ego_speed=(14.0, 14.0))  # 20 frames: one more chunk
    short, long = generate_clip(8, 3, fast), generate_clip(8, 20, fast)
    assert np.array_equal(short.frames, long.frames[:3])
    assert np.array_equal(short.labels, long.labels[:3])


@pytest.mark.parametrize("cuts", [(0,), (6,), (-1,)])
def test_cuts_outside_the_clip_are_rejected(cuts):
    with pytest.raises(SettingsError, match="cuts"):
        generate_clip(0, 6, SMALL, cuts=cuts)


@pytest.mark.parametrize(
    "bad", [{"height": 8}, {"fps": 0}, {"ego_speed": (5.0, 1.0)}, {"texture": -1.0}]
)
def test_settings_reject_bad_values(bad):
    with pytest.raises(SettingsError):
        SceneSettings(**bad)


def test_train_and_val_clip_seeds_never_coincide():
    train = {clip_seed("train", seed, i) for seed in range(4) for i in range(50)}
    val = {clip_seed("val", seed, i) for seed in range(4) for i in range(50)}
    assert not train & val and len(train) == len(val) == 200


def test_segmentation_item_has_the_contract_types_and_is_repeatable():
    dataset = SyntheticSegmentation(3, seed=1, settings=SMALL, frames_per_clip=4)
    item = dataset[2]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 128)
    assert item["label"].dtype == torch.int64 and item["label"].shape == (64, 128)
    assert item["boxes"].dtype == torch.float32 and item["classes"].dtype == torch.int64
    assert torch.equal(dataset[2]["image"], item["image"])


def test_segmentation_item_is_the_last_frame_of_the_clip_item():
    frames = SyntheticSegmentation(2, seed=1, settings=SMALL, split="val", frames_per_clip=4)[1]
    clip = SyntheticClips(2, seed=1, settings=SMALL, split="val", frames_per_clip=4)[1]
    assert clip["frames"].shape == (4, 64, 128, 3)
    assert torch.equal(frames["image"], clip["frames"][-1].permute(2, 0, 1))
    assert torch.equal(frames["label"], clip["label"])


def test_train_and_val_items_differ():
    train = SyntheticSegmentation(1, settings=SMALL, split="train", frames_per_clip=2)[0]
    val = SyntheticSegmentation(1, settings=SMALL, split="val", frames_per_clip=2)[0]
    assert not torch.equal(train["image"], val["image"])


def test_clip_item_carries_its_cuts_and_rejects_cuts_outside_the_clip():
    item = SyntheticClips(1, settings=SMALL, frames_per_clip=4, cuts=(2,))[0]
    assert item["cuts"].tolist() == [2] and item["labels"].shape == (4, 64, 128)
    with pytest.raises(SettingsError, match="cuts"):
        SyntheticClips(1, settings=SMALL, frames_per_clip=4, cuts=(4,))


def test_index_past_the_end_raises_index_error():
    with pytest.raises(IndexError):
        SyntheticSegmentation(2, settings=SMALL)[2]


def test_unknown_split_is_rejected():
    with pytest.raises(SettingsError, match="split"):
        SyntheticSegmentation(1, split="test")


def test_collate_stacks_images_and_keeps_boxes_per_frame():
    dataset = SyntheticSegmentation(2, settings=SMALL, frames_per_clip=2)
    batch = collate_frames([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, 3, 64, 128) and batch["label"].shape == (2, 64, 128)
    assert len(batch["boxes"]) == 2


def test_layout_holds_official_label_ids_and_reads_back(tmp_path):
    clips = [generate_clip(seed, 3, SMALL) for seed in (0, 1)]
    written = write_cityscapes_layout(tmp_path, clips, split="val", city="synth")
    assert [p.name for p in written] == [
        "synth_000000_000002_gtFine_labelIds.png",
        "synth_000001_000002_gtFine_labelIds.png",
    ]
    image = tmp_path / "leftImg8bit_sequence/val/synth/synth_000001_000000_leftImg8bit.png"
    assert np.array_equal(np.asarray(Image.open(image)), clips[1].frames[0])
    label_ids = np.asarray(Image.open(written[0]))
    assert np.all(label_ids[clips[0].labels[-1] == 0] == 7)  # road
    assert np.all(label_ids[clips[0].labels[-1] == 255] == 1)  # ego vehicle
    loaded = CityscapesSequence(tmp_path, "val", frames_per_clip=3)[1]
    assert torch.equal(loaded["frames"], torch.from_numpy(clips[1].frames))
    assert torch.equal(loaded["label"], torch.from_numpy(clips[1].labels[-1]).long())


def test_a_failed_write_leaves_no_file_under_a_real_name(tmp_path, monkeypatch):
    def broken_save(self, path, format=None):
        Path(path).write_bytes(b"half")  # a partial file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="No space left"):
        write_cityscapes_layout(tmp_path, [generate_clip(0, 1, SMALL)], city="synth")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_layout_rejects_names_the_loader_cannot_parse(tmp_path):
    with pytest.raises(SettingsError, match="city"):
        write_cityscapes_layout(tmp_path, [], city="new_york")


def test_written_split_holds_the_clips_of_the_clip_dataset(tmp_path):
    write_synthetic_split(tmp_path, 2, 3, split="train", seed=4, settings=SMALL)
    loaded = CityscapesSequence(tmp_path, "train", frames_per_clip=3)
    expected = SyntheticClips(2, seed=4, settings=SMALL, split="train", frames_per_clip=3)
    assert len(loaded) == 2
    assert torch.equal(loaded[1]["frames"], expected[1]["frames"])


def test_generate_command_writes_the_layout(tmp_path, monkeypatch, capsys):
    args = [
        "generate",
        str(tmp_path),
        "--clips",
        "1",
        "--frames",
        "2",
        "--height",
        "32",
        "--width",
        "64",
    ]
    monkeypatch.setattr("sys.argv", ["streamdeq", *args])
    cli.main()
    assert "wrote 1 clips" in capsys.readouterr().out
    assert CityscapesSequence(tmp_path, "val", frames_per_clip=2)[0]["frames"].shape == (
        2,
        32,
        64,
        3,
    )


def test_generate_command_reports_a_bad_split_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["streamdeq", "generate", str(tmp_path), "--split", "test"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "streamdeq: error: unknown split 'test'; use one of train, val"
    )
