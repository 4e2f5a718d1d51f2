"""Recipes: yaml -> frozen sections; unknown keys and bad values are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streamdeq.errors import SettingsError
from streamdeq.train import Recipe, RecipeError, load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path, values) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_sections_are_read_into_frozen_dataclasses(tmp_path):
    recipe = load_recipe(
        write(
            tmp_path,
            {
                "model": {"name": "mdeq-seg-small-cityscapes", "overrides": {"f_thres": 9}},
                "data": {"batch_size": 3, "augment": {"scale": [0.5, 2.0], "crop": [64, 128]}},
                "optim": {"name": "adamw", "lr": 0.001, "betas": [0.8, 0.9]},
                "deq": {"jac_weight": 2.0, "backward": {"max_iter": 7}},
            },
        )
    )
    assert recipe.data.augment.scale == (0.5, 2.0)
    assert recipe.data.augment.crop == (64, 128)
    assert recipe.optim.betas == (0.8, 0.9)
    assert recipe.model.overrides == {"f_thres": 9}
    assert recipe.deq.backward == {"max_iter": 7}
    with pytest.raises(AttributeError):
        recipe.optim.lr = 1.0  # frozen


def test_recipe_round_trips_through_its_dict():
    recipe = Recipe.from_dict({"data": {"augment": {"flip": True}}, "optim": {"lr": 0.5}})
    assert Recipe.from_dict(recipe.to_dict()) == recipe


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"optimiser": {}}, "unknown key recipe.optimiser"),
        ({"optim": {"weigth_decay": 0.1}}, "unknown key optim.weigth_decay"),
        ({"data": {"augment": {"flipp": True}}}, "unknown key data.augment.flipp"),
        ({"model": {"init_from": {"yaml": "x"}}}, "unknown key model.init_from.yaml"),
    ],
)
def test_unknown_keys_are_rejected_naming_the_key(values, named):
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict(values)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"optim": {"name": "rmsprop"}}, "optim.name"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"schedule": {"max_steps": -1}}, "schedule.max_steps"),
        ({"deq": {"jac_freq": 1.5}}, "deq.jac_freq"),
        ({"data": {"augment": {"scale": [0.5, 2.0]}}}, "data.augment.crop"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"optim": "sgd"}, "optim must be a mapping"),
    ],
)
def test_out_of_range_values_are_rejected(values, named):
    with pytest.raises(RecipeError, match=named):
        Recipe.from_dict(values)


def test_recipe_errors_are_settings_errors():
    assert issubclass(RecipeError, SettingsError)


def test_missing_and_malformed_files_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed", encoding="utf-8")
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="mapping of sections"):
        load_recipe(listed)


@pytest.mark.parametrize("name", ["seg_mdeq_tiny_synthetic.yaml", "seg_mdeq_xl_cityscapes.yaml"])
def test_committed_recipes_parse(name):
    recipe = load_recipe(CONFIGS / name)
    assert recipe.train.task == "segmentation"


def test_cli_reports_a_bad_recipe_in_one_line(tmp_path):
    path = write(tmp_path, {"optim": {"weigth_decay": 0.1}})
    out = subprocess.run(
        [sys.executable, "-m", "streamdeq", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("streamdeq: error: unknown key optim.weigth_decay")
