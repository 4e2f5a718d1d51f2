"""MDEQConfig: reading official yaml files, defaults, validation, serialisation."""

from __future__ import annotations

import pytest
import yaml

from streamdeq.errors import SettingsError
from streamdeq.models import MDEQConfig, ModelConfigError

from .conftest import OFFICIAL_YAML

MINIMAL_SEG = {
    "DATASET": {"DATASET": "cityscapes", "NUM_CLASSES": 19},
    "MODEL": {
        "EXTRA": {
            "FINAL_CONV_KERNEL": 1,
            "FULL_STAGE": {
                "NUM_BRANCHES": 2,
                "NUM_BLOCKS": [1, 1],
                "NUM_CHANNELS": [8, 16],
            },
        }
    },
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_official_yaml_fields(tmp_path):
    cfg = MDEQConfig.from_official_yaml(OFFICIAL_YAML)
    assert cfg.task == "segmentation"
    assert cfg.num_channels == (8, 16, 32, 64)
    assert (cfg.num_groups, cfg.expansion, cfg.downsample_times) == (8, 5, 2)
    assert (cfg.f_thres, cfg.b_thres, cfg.num_layers) == (27, 30, 3)
    assert (cfg.dropout, cfg.wnorm, cfg.pretrain_steps) == (0.05, True, 60000)
    assert (cfg.num_classes, cfg.final_conv_kernel, cfg.bn_momentum) == (19, 1, 0.01)


def test_missing_yaml_keys_take_official_defaults(tmp_path):
    cfg = MDEQConfig.from_official_yaml(_write(tmp_path, MINIMAL_SEG))
    assert (cfg.num_groups, cfg.expansion, cfg.dropout, cfg.wnorm) == (4, 5, 0.0, False)
    assert (cfg.f_thres, cfg.b_thres, cfg.num_layers, cfg.pretrain_steps) == (30, 40, 5, 100000)
    assert cfg.downsample_times == 2


def test_classification_task_is_inferred_and_uses_model_num_classes(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL_SEG))
    data["DATASET"] = {"DATASET": "cifar10"}
    data["MODEL"]["NUM_CLASSES"] = 10
    stage = data["MODEL"]["EXTRA"]["FULL_STAGE"]
    stage |= {"HEAD_CHANNELS": [4, 8], "FINAL_CHANSIZE": 32}
    cfg = MDEQConfig.from_official_yaml(_write(tmp_path, data))
    assert (cfg.task, cfg.num_classes, cfg.bn_momentum) == ("classification", 10, 0.1)
    assert cfg.head_channels == (4, 8)


def test_missing_structure_key_is_named(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL_SEG))
    del data["MODEL"]["EXTRA"]["FULL_STAGE"]["NUM_CHANNELS"]
    with pytest.raises(ModelConfigError, match="NUM_CHANNELS is required"):
        MDEQConfig.from_official_yaml(_write(tmp_path, data))


def test_unsupported_block_type_is_rejected(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL_SEG))
    data["MODEL"]["EXTRA"]["FULL_STAGE"]["BLOCK"] = "BOTTLENECK"
    with pytest.raises(ModelConfigError, match="BLOCK"):
        MDEQConfig.from_official_yaml(_write(tmp_path, data))


def test_unreadable_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ModelConfigError, match="cannot read"):
        MDEQConfig.from_official_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_channels": (8, 10, 32, 64)}, "multiple of num_groups"),
        ({"num_blocks": (1, 1)}, "num_blocks has 2 entries"),
        ({"task": "detection"}, "task must be one of"),
        ({"downsample_times": 3}, "downsample_times"),
        ({"dropout": 1.0}, "dropout"),
        ({"head_channels": (4, 8)}, "head_channels"),
        ({"num_groups": 1, "num_channels": (1, 2, 3, 4)}, "num_groups must be >= 2"),
    ],
)
def test_invalid_settings_are_rejected_with_a_reason(changes, message):
    with pytest.raises(ModelConfigError, match=message):
        MDEQConfig(**changes)
    assert issubclass(ModelConfigError, SettingsError)


def test_json_round_trip_and_unknown_keys():
    cfg = MDEQConfig(task="segmentation", num_channels=[8, 16, 32, 64], head_channels=())
    assert MDEQConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ModelConfigError, match="unknown MDEQ setting"):
        MDEQConfig.from_dict({**cfg.to_dict(), "channels": 3})
