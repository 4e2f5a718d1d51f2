from __future__ import annotations

import pytest

import streamdeq.models.zoo as zoo
from streamdeq.errors import SettingsError
from streamdeq.experiments import MissingWeightsError, load_model
from streamdeq.models import get_config, save_safetensors

from .conftest import tiny_model


def test_a_checkpoint_loads_in_eval_mode(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_safetensors(tiny_model(), path)
    model = load_model(checkpoint=path)
    assert not model.training and model.config.num_channels == (8, 16, 32, 64)


def test_a_name_and_a_checkpoint_conflict(tmp_path):
    with pytest.raises(SettingsError, match="not both"):
        load_model("mdeq-seg-small-cityscapes", tmp_path / "x.safetensors")


def test_an_official_checkpoint_must_be_converted_first(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"")
    with pytest.raises(SettingsError, match="streamdeq convert"):
        load_model(checkpoint=path)


@pytest.fixture
def registry():
    with zoo.MODELS.restored():  # entries leave with the test
        yield zoo


def test_a_name_whose_weights_file_is_missing_is_an_error(tmp_path, registry):
    name = "test-seg-missing-weights"
    config = get_config("mdeq-seg-small-cityscapes")
    zoo.register_model(name, config, weights=tmp_path / "gone.safetensors", overwrite=True)
    with pytest.raises(MissingWeightsError, match=f"weights of {name} are not available"):
        load_model(name)
    assert load_model(name, random_weights=True).training is False
