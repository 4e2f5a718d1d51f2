"""The named-model registry: official names, overrides, errors, bundled weights."""

from __future__ import annotations

import pytest
import torch

from streamdeq.errors import UnknownModelError
from streamdeq.models import (
    ModelConfigError,
    NoPretrainedWeightsError,
    create_model,
    get_config,
    list_models,
    save_safetensors,
    zoo,
)

from .conftest import image, tiny_model, tiny_overrides

OFFICIAL_NAMES = [
    "mdeq-cls-tiny-cifar",
    "mdeq-cls-large-cifar",
    "mdeq-cls-small-imagenet",
    "mdeq-cls-large-imagenet",
    "mdeq-cls-xl-imagenet",
    "mdeq-seg-small-cityscapes",
    "mdeq-seg-large-cityscapes",
    "mdeq-seg-xl-cityscapes",
]


def test_every_official_experiment_has_a_name():
    assert set(OFFICIAL_NAMES) <= set(list_models())


def test_named_configs_carry_official_values():
    seg = get_config("mdeq-seg-xl-cityscapes")
    assert seg.num_channels == (88, 176, 352, 704)
    assert (seg.expansion, seg.f_thres, seg.num_classes, seg.bn_momentum) == (6, 26, 19, 0.01)
    tiny = get_config("mdeq-cls-tiny-cifar")
    assert (tiny.num_branches, tiny.downsample_times, tiny.num_classes) == (2, 0, 10)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as info:
        create_model("mdeq-seg-huge-cityscapes")
    assert "mdeq-seg-small-cityscapes" in str(info.value)


def test_pretrained_without_bundled_weights_is_a_clear_error():
    with pytest.raises(NoPretrainedWeightsError, match="load_official_mdeq"):
        create_model("mdeq-seg-small-cityscapes", pretrained=True)


def test_unknown_override_is_rejected():
    with pytest.raises(ModelConfigError, match="mdeq-seg-small-cityscapes: unknown override"):
        create_model("mdeq-seg-small-cityscapes", channels=(8, 16, 32, 64))


def test_every_registered_config_overrides_and_builds_through_one_interface():
    """Segmentation, classification and detection configs alike: the zoo does no dispatch."""
    for name in list_models():
        with pytest.raises(ModelConfigError, match=f"{name}: unknown"):
            get_config(name, no_such_field=1)
        assert callable(get_config(name).build)
    assert get_config("mdeq-seg-small-cityscapes", f_thres=3).f_thres == 3
    detector = get_config("mdeq-det-tiny-synthetic", backbone={"f_thres": 3})
    assert detector.backbone.f_thres == 3


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_named_config_builds_and_runs_f_and_head(name):
    model = create_model(name, **tiny_overrides(name)).eval()
    cfg = model.config
    x = image(model)
    with torch.no_grad():
        injection = model.inject(x)
        z = model.init_state(injection)
        fz = model.f(z, injection)
        logits = model.head(fz)
    side = x.shape[-1] // 2**cfg.downsample_times
    assert [tuple(t.shape) for t in fz] == [
        (2, c, side >> i, side >> i) for i, c in enumerate(cfg.num_channels)
    ]
    if cfg.task == "segmentation":
        assert logits.shape == (2, cfg.num_classes, side, side)
    else:
        assert logits.shape == (2, cfg.num_classes)
    assert torch.isfinite(logits).all()


def test_registered_weights_load_with_pretrained(tmp_path, monkeypatch):
    source = tiny_model("mdeq-cls-tiny-cifar").eval()
    path = tmp_path / "tiny.safetensors"
    save_safetensors(source, path)
    entry = zoo.ModelEntry("mdeq-test-bundled", source.config, weights=path)
    with zoo.MODELS.restored():
        zoo.MODELS.register(entry.name, entry)
        model = create_model("mdeq-test-bundled", pretrained=True)
    assert not model.training
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
