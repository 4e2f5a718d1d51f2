"""The input contract of trained weights: written into safetensors files, read back onto the
model, declared by registry entries, and used by the stream to normalise frames."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdeq.models import create_model, load_safetensors, save_safetensors
from streamdeq.models.checkpoints import PRETRAINED_KEY, CheckpointWriteError
from streamdeq.models.pretrained import (
    FORMAT_VERSION,
    GENERATED_SCENES,
    PretrainedInfo,
    PretrainedInfoError,
)
from streamdeq.stream import IMAGENET_MEAN, IMAGENET_STD, PreprocessSettings, StreamDEQ

from .conftest import tiny_model

OLD_FORMAT = (
    Path(__file__).resolve().parent.parent / "fixtures" / "mdeq_cls_tiny_old_format.safetensors"
)
IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def metadata(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])["__metadata__"]


def test_the_contract_round_trips_through_a_safetensors_file(tmp_path):
    info = PretrainedInfo(
        task="segmentation",
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
        class_names=("road", "sky"),
        input_size=(64, 128),
        f_thres=7,
        trained_on="cityscapes",
    )
    save_safetensors(tiny_model(), tmp_path / "m.safetensors", info=info)
    assert load_safetensors(tmp_path / "m.safetensors").pretrained_info == info


def test_a_file_written_before_the_contract_loads_with_imagenet_statistics():
    model = load_safetensors(OLD_FORMAT)
    assert PRETRAINED_KEY not in metadata(OLD_FORMAT)
    info = model.pretrained_info
    assert (info.mean, info.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert info.format_version == 0 and info.task == "classification"
    assert info.f_thres == model.config.f_thres and info.trained_on is None


def test_a_file_without_a_contract_gets_one_derived_from_the_config(tmp_path):
    save_safetensors(tiny_model(), tmp_path / "m.safetensors")
    info = load_safetensors(tmp_path / "m.safetensors").pretrained_info
    assert info.format_version == FORMAT_VERSION and info.mean == IMAGENET_MEAN


def test_fields_a_newer_version_adds_are_ignored():
    record = json.loads(PretrainedInfo(task="segmentation").to_json()) | {"licence": "x"}
    assert PretrainedInfo.from_json(json.dumps(record)) == PretrainedInfo(task="segmentation")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("std", (0.2, 0.0, 0.2)),
        ("mean", (0.5, 0.5)),
        ("color_order", "BGR"),
        ("input_size", (0, 8)),
    ],
)
def test_an_invalid_contract_is_refused(field, value):
    with pytest.raises(PretrainedInfoError, match=field.split("_")[0]):
        PretrainedInfo(task="segmentation", **{field: value})


def test_the_bundled_models_declare_what_they_were_trained_on():
    seg = create_model("mdeq-seg-tiny-synthetic", pretrained=True).pretrained_info
    assert seg.trained_on == GENERATED_SCENES and seg.input_size == (128, 256)
    assert len(seg.class_names) == 19 and seg.mean == IMAGENET_MEAN
    det = create_model("mdeq-det-tiny-synthetic", pretrained=True).pretrained_info
    assert det.architecture == "mdeq-faster-rcnn" and det.generated_only


def test_a_model_saved_with_identity_normalisation_streams_with_it(tmp_path):
    model = tiny_model().eval()
    save_safetensors(model, tmp_path / "m.safetensors", PretrainedInfo("segmentation", **IDENTITY))
    loaded = load_safetensors(tmp_path / "m.safetensors")
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    implicit = StreamDEQ(loaded, iters=2).step(frame).output
    explicit = StreamDEQ(model, iters=2, preprocess=PreprocessSettings(**IDENTITY)).step(frame)
    imagenet = StreamDEQ(model, iters=2).step(frame).output
    assert torch.allclose(implicit, explicit.output)
    assert not torch.allclose(implicit, imagenet)


def test_an_explicit_preprocess_wins_over_the_models_contract(tmp_path):
    model = tiny_model().eval()
    model.pretrained_info = PretrainedInfo("segmentation", **IDENTITY)
    settings = PreprocessSettings(pad_mode="replicate")
    assert StreamDEQ(model, preprocess=settings).settings.preprocess_for(model) == settings


def test_a_saved_file_gets_the_mode_of_any_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        save_safetensors(tiny_model(), tmp_path / "m.safetensors")
    finally:
        os.umask(previous)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


def test_saving_into_a_missing_folder_is_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(CheckpointWriteError, match="cannot write .*m.safetensors") as error:
        save_safetensors(tiny_model(), tmp_path / "missing" / "m.safetensors")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
