from __future__ import annotations

import pytest
import torch

from streamdeq.models import (
    create_model,
    get_config,
    list_models,
    load_safetensors,
    save_safetensors,
)
from streamdeq.models.detection import DetectorConfigError, MDEQDetector

from .conftest import tiny_config


def test_the_tiny_synthetic_detector_is_registered_and_builds():
    assert "mdeq-det-tiny-synthetic" in list_models()
    config = get_config("mdeq-det-tiny-synthetic")
    assert config.task == "detection"
    assert set(config.class_ids) == {11, 12, 13, 14, 15, 18}


def test_create_model_applies_detector_overrides():
    model = create_model("mdeq-det-tiny-synthetic", backbone={"f_thres": 3}, fpn_channels=16)
    assert isinstance(model, MDEQDetector)
    assert model.config.f_thres == 3 and model.fpn.output[0].out_channels == 16


def test_create_model_rejects_unknown_detector_overrides():
    with pytest.raises(DetectorConfigError, match="fpn_width"):
        create_model("mdeq-det-tiny-synthetic", fpn_width=16)


def test_detector_weights_round_trip_through_safetensors(tmp_path, detector):
    path = tmp_path / "det.safetensors"
    save_safetensors(detector, path)
    torch.manual_seed(1)
    loaded = load_safetensors(path, model=MDEQDetector(tiny_config()))
    for (name, a), (_, b) in zip(
        detector.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_a_saved_detector_rebuilds_from_its_file_alone(tmp_path, detector):
    path = tmp_path / "det.safetensors"
    save_safetensors(detector, path)
    loaded = load_safetensors(path)
    assert isinstance(loaded, MDEQDetector) and loaded.config == detector.config
    assert not loaded.training
