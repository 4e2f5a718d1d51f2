"""One resolution of a model name or file, with one policy for missing weights."""

from __future__ import annotations

import pytest
import torch

from streamdeq.errors import CheckpointError, SettingsError, UnknownModelError
from streamdeq.models import resolve, save_safetensors, zoo
from streamdeq.models.resolve import MissingWeightsError, resolve_model

from .conftest import OFFICIAL_STATE, OFFICIAL_YAML, tiny_model


@pytest.fixture
def registry():
    with zoo.MODELS.restored():  # entries leave with the test
        yield zoo


@pytest.fixture
def lost(registry, tmp_path) -> str:
    """A registered tiny model whose weights file is missing."""
    config = tiny_model().config
    registry.register_model("tiny-lost", config, weights=tmp_path / "gone.safetensors")
    return "tiny-lost"


def test_no_name_gives_the_default_with_its_bundled_weights_and_a_domain_note():
    resolved = resolve_model()
    assert resolved.entry.name == resolve.DEFAULT_MODEL and not resolved.model.training
    assert resolved.description == f"{resolve.DEFAULT_MODEL} (bundled weights)"
    assert resolved.warning is None
    assert "trained only on generated street scenes" in resolved.note
    assert "On real footage" in resolved.note


def test_required_weights_that_are_missing_are_an_error(lost):
    with pytest.raises(MissingWeightsError, match=f"weights of {lost} are not available"):
        resolve_model(lost)


def test_missing_weights_run_random_with_a_warning_when_allowed(lost):
    first = resolve_model(lost, weights="random-if-missing")
    second = resolve_model(lost, weights="random-if-missing")
    assert "RANDOM" in first.description and "is missing its weights" in first.warning
    assert first.note is None and first.info.trained_on is None
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the same random weights every run


def test_random_weights_asked_for_come_without_a_warning():
    resolved = resolve_model("mdeq-seg-small-cityscapes", weights="random", overrides=None)
    assert resolved.warning is None and "RANDOM" in resolved.description


def test_the_default_model_must_have_its_weights_even_where_random_is_allowed(monkeypatch):
    monkeypatch.setattr(resolve, "DEFAULT_MODEL", "not-installed")
    with pytest.raises(MissingWeightsError, match="default not-installed.*--model NAME"):
        resolve_model(weights="random-if-missing")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="mdeq-seg-small-cityscapes"):
        resolve_model("mdeq-seg-huge")


def test_a_safetensors_checkpoint_brings_its_contract(tmp_path):
    save_safetensors(tiny_model(), tmp_path / "m.safetensors")
    resolved = resolve_model(checkpoint=tmp_path / "m.safetensors")
    assert resolved.entry is None and resolved.info is resolved.model.pretrained_info
    assert resolved.description == f"checkpoint {tmp_path / 'm.safetensors'}"


def test_an_official_checkpoint_needs_its_yaml_or_a_conversion(tmp_path):
    (tmp_path / "m.pth").write_bytes(b"")
    with pytest.raises(SettingsError, match="streamdeq convert"):
        resolve_model(checkpoint=tmp_path / "m.pth")


def test_an_official_checkpoint_with_its_yaml_loads():
    resolved = resolve_model(checkpoint=OFFICIAL_STATE, config=OFFICIAL_YAML)
    assert resolved.description.startswith("official checkpoint")
    assert resolved.info.trained_on == "cityscapes"


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        resolve_model(checkpoint=tmp_path / "no.safetensors")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mdeq-seg-small-cityscapes", "checkpoint": "x.safetensors"}, "not both"),
        ({"config": "seg.yaml"}, "give both"),
        ({"weights": "maybe"}, "weights must be one of"),
    ],
)
def test_conflicting_arguments_are_refused(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        resolve_model(**kwargs)
