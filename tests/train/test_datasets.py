"""Dataset names in recipes: the registry, importable factories, in-memory caching."""

from __future__ import annotations

import pytest
import torch

from streamdeq.train import CachedDataset, RecipeError
from streamdeq.train.datasets import build_dataset

from .conftest import STAND_IN, BandScenes


def test_registered_names_build_with_their_split_options():
    dataset = build_dataset(STAND_IN, "val", {"num_items": 3, "height": 16, "width": 32})
    assert len(dataset) == 3
    assert dataset[0]["image"].shape == (3, 16, 32)


def test_a_module_path_names_a_dataset_without_registering_it():
    dataset = build_dataset("tests.train.conftest:BandScenes", "train", {"num_items": 2})
    assert isinstance(dataset, BandScenes)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("no-such-data", {}, "unknown dataset 'no-such-data'"),
        ("tests.train.conftest:Nothing", {}, "cannot import dataset"),
        (STAND_IN, {"num_itemz": 2}, "options do not fit"),
    ],
)
def test_bad_dataset_settings_are_recipe_errors(name, options, message):
    with pytest.raises(RecipeError, match=message):
        build_dataset(name, "train", options)


def test_cached_items_equal_the_source_items_with_their_dtypes():
    source = BandScenes("train", num_items=3)
    cached = CachedDataset(source)
    for index in range(3):
        for key, value in source[index].items():
            assert cached[index][key].dtype == value.dtype
            assert torch.equal(cached[index][key], value)
