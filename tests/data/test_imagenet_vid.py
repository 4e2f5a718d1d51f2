"""The ImageNet VID reader on a tiny dataset the tests write in the official ILSVRC2015 layout."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamdeq.data.imagenet_vid import (
    VID_CLASS_INDEX,
    VID_CLASSES,
    ImageNetVID,
    ImageNetVIDClips,
    ImageNetVIDError,
    ResizeSettings,
    parse_annotation,
)
from streamdeq.errors import SettingsError, StreamDEQError

AIRPLANE, BEAR, ZEBRA = "n02691156", "n02131653", "n02391049"
PERSON = "n00007846"  # a DET class that is not one of the 30 VID classes
SMALL = ResizeSettings(min_size=60, max_size=100)

VAL_A = "ILSVRC2015_val_00000000"  # 4 frames of 80x60 (W x H)
VAL_B = "ILSVRC2015_val_00000001"  # 2 frames of 300x100
TRAIN_A = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"  # 5 frames
TRAIN_B = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00001000"  # 3 frames
DET_A = "ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
DET_B = "ILSVRC2014_train_0000/ILSVRC2014_train_00000002"


def write_annotation(path: Path, width: int, height: int, objects: list[dict]) -> None:
    """A Pascal-VOC style XML as the ILSVRC2015 archive has them."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = path.parent.name
    ET.SubElement(root, "filename").text = path.stem
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    for obj in objects:
        element = ET.SubElement(root, "object")
        if "trackid" in obj:
            ET.SubElement(element, "trackid").text = str(obj["trackid"])
        ET.SubElement(element, "name").text = obj["name"]
        box = ET.SubElement(element, "bndbox")
        for key, value in zip(("xmax", "xmin", "ymax", "ymin"), obj["box"]):
            ET.SubElement(box, key).text = str(value)
        if "trackid" in obj:
            ET.SubElement(element, "occluded").text = str(obj.get("occluded", 0))
            ET.SubElement(element, "generated").text = str(obj.get("generated", 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path)


def write_image(path: Path, width: int, height: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((height, width, 3), value, dtype=np.uint8)
    pixels[: height // 2, : width // 2] = 255 - value  # a corner that shows orientation
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)


def write_snippet(root: Path, split: str, snippet: str, frames: int, width: int, height: int):
    for t in range(frames):
        stem = f"{snippet}/{t:06d}"
        write_image(root / "Data/VID" / split / f"{stem}.JPEG", width, height, 10 * t)
        objects = [  # xmax, xmin, ymax, ymin: the archive's element order
            {"trackid": 0, "name": AIRPLANE, "box": (20 + t, 10 + t, 30, 5), "occluded": t % 2},
            {"trackid": 1, "name": ZEBRA, "box": (width - 1, width - 11, height - 1, height - 21)},
        ]
        if t == frames - 1:
            objects[1]["generated"] = 1
        write_annotation(root / "Annotations/VID" / split / f"{stem}.xml", width, height, objects)


def write_vid_root(root: Path) -> Path:
    """VID val (2 snippets), VID train (2 snippets over 2 class lists), DET train (2 images)."""
    write_snippet(root, "val", VAL_A, 4, 80, 60)
    write_snippet(root, "val", VAL_B, 2, 300, 100)
    write_snippet(root, "train", TRAIN_A, 5, 80, 60)
    write_snippet(root, "train", TRAIN_B, 3, 80, 60)
    sets = root / "ImageSets/VID"
    sets.mkdir(parents=True)
    lines = [f"{VAL_A}/{t:06d} {t + 1}" for t in range(4)]
    lines += [f"{VAL_B}/{t:06d} {t + 5}" for t in range(2)]
    (sets / "val.txt").write_text("\n".join(lines) + "\n")
    (sets / "train_1.txt").write_text(f"{TRAIN_A} 1\n{TRAIN_B} -1\n")
    (sets / "train_30.txt").write_text(f"{TRAIN_B} 1\n{TRAIN_A} 1\n")
    for stem, objects in (
        (DET_A, [{"name": BEAR, "box": (50, 10, 40, 20)}, {"name": PERSON, "box": (5, 1, 5, 1)}]),
        (DET_B, [{"name": PERSON, "box": (30, 10, 30, 10)}]),
    ):
        write_image(root / "Data/DET/train" / f"{stem}.JPEG", 64, 48, 100)
        write_annotation(root / "Annotations/DET/train" / f"{stem}.xml", 64, 48, objects)
    det_sets = root / "ImageSets/DET"
    det_sets.mkdir(parents=True)
    (det_sets / "train_1.txt").write_text(f"{DET_A} 1\n{DET_B} 1\n")
    (det_sets / "train_2.txt").write_text(f"{DET_B} -1\n")
    return root


@pytest.fixture
def vid_root(tmp_path: Path) -> Path:
    return write_vid_root(tmp_path / "ILSVRC2015")


def test_class_table_has_the_30_vid_classes():
    assert len(VID_CLASSES) == 30 == len(set(VID_CLASS_INDEX))
    assert VID_CLASSES[0] == (AIRPLANE, "airplane")
    assert VID_CLASSES[-1] == (ZEBRA, "zebra")
    names = [name for _, name in VID_CLASSES]
    assert names == sorted(names)


def test_annotation_fields_are_read(vid_root):
    annotation = parse_annotation(vid_root / f"Annotations/VID/val/{VAL_A}/000003.xml")
    assert (annotation.width, annotation.height) == (80, 60)
    np.testing.assert_allclose(annotation.boxes, [[13, 5, 23, 30], [69, 39, 79, 59]])
    assert annotation.classes.tolist() == [0, 29]
    assert annotation.track_ids.tolist() == [0, 1]
    assert annotation.occluded.tolist() == [True, False]
    assert annotation.generated.tolist() == [False, True]


def test_val_frames_follow_the_val_list(vid_root):
    dataset = ImageNetVID(vid_root, "val", resize=None)
    assert len(dataset) == 6
    item = dataset[1]
    assert item["name"] == f"VID/val/{VAL_A}/000001"
    assert item["image"].shape == (3, 60, 80) and item["image"].dtype.is_floating_point is False
    assert item["classes"].tolist() == [0, 29]
    np.testing.assert_allclose(item["boxes"].numpy(), [[11, 5, 21, 30], [69, 39, 79, 59]])


def test_resize_sets_shorter_side_and_scales_boxes(vid_root):
    item = ImageNetVID(vid_root, "val", resize=SMALL)[0]  # 80x60 -> shorter side 60: unchanged
    assert item["image"].shape == (3, 60, 80)
    item = ImageNetVID(vid_root, "val", resize=ResizeSettings(min_size=120, max_size=1000))[0]
    assert item["image"].shape == (3, 120, 160)
    np.testing.assert_allclose(item["boxes"][0].numpy(), [20, 10, 40, 60])
    assert item["orig_size"] == (60, 80)


def test_resize_caps_the_longer_side(vid_root):
    dataset = ImageNetVID(vid_root, "val", resize=SMALL)
    item = dataset[4]  # 300x100: shorter side 60 would make the longer 180 > 100
    assert item["image"].shape == (3, 33, 100)
    np.testing.assert_allclose(item["boxes"][1].numpy(), [289 / 3, 79 * 0.33, 299 / 3, 99 * 0.33])


def test_paper_default_resize_is_600_by_1000():
    assert ResizeSettings().output_size(480, 640) == (600, 800)
    assert ResizeSettings().output_size(500, 1500) == (333, 1000)


def test_resized_image_keeps_its_content_orientation(vid_root):
    image = ImageNetVID(vid_root, "val", resize=ResizeSettings(120, 200))[1]["image"]
    assert image[:, 5, 5].float().mean() > 200 > image[:, -5, -5].float().mean()


def test_train_uses_snippets_listed_positive_in_any_class_list(vid_root):
    dataset = ImageNetVID(vid_root, "train", resize=None)
    assert len(dataset) == 5 + 3
    names = {dataset[i]["name"].rsplit("/", 1)[0] for i in range(len(dataset))}
    assert names == {f"VID/train/{TRAIN_A}", f"VID/train/{TRAIN_B}"}


def test_frames_per_snippet_spreads_frames_evenly(vid_root):
    dataset = ImageNetVID(vid_root, "train", frames_per_snippet=3, resize=None)
    stems = [frame.stem.rsplit("/", 1)[1] for frame in dataset.frames]
    assert stems == ["000000", "000002", "000004", "000000", "000001", "000002"]


def test_det_images_keep_only_vid_classes(vid_root):
    dataset = ImageNetVID(vid_root, "train", include_det=True, resize=None)
    assert len(dataset) == 8 + 1  # DET_B holds only a person: not a VID class
    item = dataset[8]
    assert item["name"] == f"DET/train/{DET_A}"
    assert item["classes"].tolist() == [VID_CLASS_INDEX[BEAR]]
    np.testing.assert_allclose(item["boxes"].numpy(), [[10, 20, 50, 40]])
    assert item["track_ids"].tolist() == [-1]


def test_clips_end_at_the_snippet_end_by_default(vid_root):
    clips = ImageNetVIDClips(vid_root, "val", frames_per_clip=3, resize=None)
    assert len(clips) == 1 and clips.skipped == [VAL_B]
    clip = clips[0]
    assert clip["name"] == f"{VAL_A}/000003"
    assert clip["frames"].shape == (3, 60, 80, 3) and clip["frames"].dtype == np.uint8
    # frame t's airplane starts at x = 10 + t: the clip holds frames 1, 2, 3
    assert [float(target["boxes"][0, 0]) for target in clip["targets"]] == [11.0, 12.0, 13.0]


def test_clip_stride_gives_one_clip_per_stride(vid_root):
    clips = ImageNetVIDClips(vid_root, "val", frames_per_clip=2, clip_stride=1, resize=SMALL)
    assert [clips[i]["name"] for i in range(len(clips))] == [
        f"{VAL_A}/000001",
        f"{VAL_A}/000002",
        f"{VAL_A}/000003",
        f"{VAL_B}/000001",
    ]
    assert clips[3]["frames"].shape == (2, 33, 100, 3)


def test_missing_root_says_what_to_pass(tmp_path):
    with pytest.raises(ImageNetVIDError, match="does not exist; pass the ILSVRC2015 folder"):
        ImageNetVID(tmp_path / "nowhere")


def test_root_without_the_layout_names_what_is_missing(tmp_path):
    (tmp_path / "Data").mkdir()
    with pytest.raises(ImageNetVIDError, match="no Annotations, ImageSets"):
        ImageNetVIDClips(tmp_path)
    assert issubclass(ImageNetVIDError, StreamDEQError)


def test_malformed_xml_names_the_file(vid_root):
    path = vid_root / f"Annotations/VID/val/{VAL_A}/000002.xml"
    path.write_text("<annotation><size><width>80</width>")
    dataset = ImageNetVID(vid_root, "val", resize=None)
    with pytest.raises(ImageNetVIDError, match=r"malformed annotation XML .*000002\.xml"):
        dataset[2]


def test_non_numeric_box_names_the_field(vid_root):
    path = vid_root / f"Annotations/VID/val/{VAL_A}/000000.xml"
    path.write_text(path.read_text().replace("<xmin>10</xmin>", "<xmin>ten</xmin>"))
    with pytest.raises(ImageNetVIDError, match=r"<bndbox/xmin> is 'ten'"):
        ImageNetVID(vid_root, "val", resize=None)[0]


def test_missing_frame_image_is_a_clear_error(vid_root):
    (vid_root / f"Data/VID/val/{VAL_B}/000001.JPEG").unlink()
    with pytest.raises(ImageNetVIDError, match="image not found"):
        ImageNetVID(vid_root, "val", resize=None)[5]


def test_malformed_list_line_names_file_and_line(vid_root):
    (vid_root / "ImageSets/VID/val.txt").write_text(f"{VAL_A}/000000 1\njunk\n")
    with pytest.raises(ImageNetVIDError, match=r"val\.txt:2: expected"):
        ImageNetVID(vid_root, "val")


@pytest.mark.parametrize(
    "options",
    [{"split": "test"}, {"frames_per_snippet": 0}, {"resize": "big"}],
)
def test_bad_settings_are_rejected(vid_root, options):
    with pytest.raises(SettingsError):
        ImageNetVID(vid_root, **options)


def test_bad_resize_settings_are_rejected():
    with pytest.raises(SettingsError, match="max_size"):
        ResizeSettings(min_size=600, max_size=500)


def test_shipped_recipe_builds_this_dataset(vid_root):
    from streamdeq.train.datasets import build_dataset
    from streamdeq.train.recipe import load_recipe

    recipe_path = Path(__file__).parents[2] / "configs" / "det_mdeq_xl_imagenet_vid.yaml"
    recipe = load_recipe(recipe_path)
    assert (recipe.data.batch_size, recipe.optim.lr, recipe.deq.f_thres) == (4, 0.01, 26)
    options = {**recipe.data.train, "root": str(vid_root), "min_size": 60, "max_size": 100}
    train = build_dataset(recipe.data.dataset, "train", options)
    assert len(train) == 8 + 1  # VID frames (15 a snippet: all of these short ones) + DET
    val = build_dataset(recipe.data.dataset, "val", {**recipe.data.val, "root": str(vid_root)})
    assert len(val) == 6
