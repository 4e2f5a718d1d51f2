"""Counting the tensor operations a piece of code dispatches: how tests pin that per-stream
work does not grow (each operation is a kernel launch on a GPU and a GIL release)."""

from __future__ import annotations

import collections

from torch.utils._python_dispatch import TorchDispatchMode


class OpCount(TorchDispatchMode):
    """``with OpCount() as counter: ...`` then ``counter.ops``: {aten op name: calls}."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))
