"""Datasets a recipe can name: a small registry of factories ``(split, **options) -> Dataset``.

A dataset item is a dict of tensors; what keys it holds is the task's business (segmentation:
``image`` (3, H, W) uint8 and ``label`` (H, W) int64). Built-in names are imported lazily so a
recipe for one dataset does not import the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from ..plugins import load_plugins
from ..registry import Registry
from .recipe import RecipeError

DatasetFactory = Callable[..., Dataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset", error=RecipeError, loader=load_plugins)


def register_dataset(name: str, factory: DatasetFactory, *, overwrite: bool = False) -> None:
    """Make ``data.dataset: NAME`` usable in recipes; ``factory(split, **options)``."""
    DATASETS.register(name, factory, overwrite=overwrite)


def list_datasets() -> list[str]:
    return DATASETS.names(sort=True)


def build_dataset(name: str, split: str, options: Mapping[str, Any]) -> Dataset:
    """``factory(split, **options)`` for a registered name, or for ``"package.module:callable"``
    (a user's own dataset, importable in every process, without registering it)."""
    factory = DATASETS.get(name) if name in DATASETS else _import_factory(name)
    try:
        return factory(split, **dict(options))
    except TypeError as err:
        raise RecipeError(f"data.{split} options do not fit dataset {name!r}: {err}") from None


def _import_factory(name: str) -> DatasetFactory:
    module_name, _, attr = name.partition(":")
    if not attr:
        raise RecipeError(
            f"unknown dataset {name!r} in data.dataset; known: {', '.join(list_datasets())} "
            "(or give package.module:callable)"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise RecipeError(f"cannot import dataset {name!r} from data.dataset: {err}") from None
    if not callable(factory):
        raise RecipeError(f"data.dataset {name!r} is not callable")
    return factory


class CachedDataset(Dataset):
    """Every item of ``source`` computed once and kept in memory (uint8 where it fits), for
    generated data whose items are costly to produce and revisited every epoch."""

    def __init__(self, source: Dataset) -> None:
        self.items = [_compact(source[i]) for i in range(len(source))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: _expand(v) for k, v in self.items[index].items()}


def _compact(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in item.items():
        if (
            isinstance(value, torch.Tensor)
            and value.dtype == torch.int64
            and value.numel()
            and int(value.min()) >= 0
            and int(value.max()) <= 255
        ):
            out[key] = (value.to(torch.uint8), torch.int64)
        else:
            out[key] = (value, None)
    return out


def _expand(entry: tuple[Any, Any]) -> Any:
    value, dtype = entry
    return value.to(dtype) if dtype is not None else value


def _synthetic(split: str, **options: Any) -> Dataset:
    """The procedural street scenes: options are ``num_clips``, ``seed`` and SceneSettings
    fields under ``scene``."""
    from ..data.synthetic import SceneSettings, SyntheticSegmentation

    scene_values = dict(options.pop("scene", {}) or {})
    scene = SceneSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in scene_values.items()}
    )
    return SyntheticSegmentation(settings=scene, split=split, **options)


def _cityscapes(split: str, root: str, **options: Any) -> Dataset:
    """The annotated frames of Cityscapes (the last frame of each sequence clip)."""
    from ..data.cityscapes import CityscapesSequence

    return _LastFrame(CityscapesSequence(root, split=split, frames_per_clip=1, **options))


class _LastFrame(Dataset):
    """Clips -> their annotated (last) frame as a segmentation item."""

    def __init__(self, clips: Dataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.clips[index]
        frame = torch.as_tensor(clip["frames"][-1]).permute(2, 0, 1).contiguous()
        return {"image": frame, "label": torch.as_tensor(clip["label"]).long()}


register_dataset("synthetic", _synthetic)
register_dataset("cityscapes", _cityscapes)
