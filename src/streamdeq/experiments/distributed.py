"""Evaluation across processes: each rank takes every world_size-th clip, and the results are
combined so that every rank returns the same numbers as one process would.

Confusion matrices are summed (``ConfusionMatrix.all_reduce``); rows and timings are gathered as
Python objects. Without an initialised process group everything is local.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def shard(items: Sequence[T]) -> list[tuple[int, T]]:
    """(index, item) pairs of this rank's share: items rank, rank + world, ..."""
    if not is_distributed():
        return list(enumerate(items))
    rank, world = dist.get_rank(), dist.get_world_size()
    return [(i, item) for i, item in enumerate(items) if i % world == rank]


def gather(values: list[Any]) -> list[Any]:
    """Every rank's ``values`` concatenated in rank order (all ranks get the whole list)."""
    if not is_distributed():
        return values
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, values)
    return [value for part in parts for value in part]


def confusion_matrices(keys: Iterable[Hashable], num_classes: int = 19) -> dict[Hashable, Any]:
    """A fresh ConfusionMatrix (ignore 255) per key; create every key up front so that all
    ranks reduce the same matrices in the same order."""
    from ..eval.segmentation import ConfusionMatrix

    return {key: ConfusionMatrix(num_classes=num_classes, ignore_index=255) for key in keys}


def reduce_confusions(matrices: Mapping[Hashable, Any]) -> None:
    """Sum each matrix over the ranks, in place, in key order (the same on every rank)."""
    if not is_distributed():
        return
    for key in sorted(matrices, key=repr):
        matrices[key].all_reduce()
