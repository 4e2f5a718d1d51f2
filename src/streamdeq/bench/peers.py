"""TorchDEQ's solvers (PyPI ``torchdeq``, a peer installed only for benchmarking) on our f.

TorchDEQ solvers take one tensor, so the multiscale state is packed into a (B, D) vector and
unpacked around f, as TorchDEQ's own DEQ layer does for list states; that packing is part of
what using TorchDEQ on an MDEQ costs. ``tol=0`` (its stop test is ``residual < tol``) gives a
fixed budget, as ours without a tolerance.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

from torch import Tensor

from ..solvers.base import flatten, unflatten

#: our name -> TorchDEQ's registry key
TORCHDEQ_SOLVERS = {"broyden": "broyden", "anderson": "anderson", "fixed_point": "fixed_point_iter"}


def torchdeq_available() -> bool:
    return importlib.util.find_spec("torchdeq") is not None


def torchdeq_solve(
    method: str,
    f: Callable[..., list[Tensor]],
    z0: Sequence[Tensor],
    args: Sequence,
    max_iter: int,
) -> int:
    """Run TorchDEQ's ``method`` for ``max_iter`` iterations from ``z0``; returns how many
    times it evaluated f."""
    from torchdeq.solver import get_solver

    solver = get_solver(TORCHDEQ_SOLVERS[method])
    like = list(z0)
    x0 = flatten(like)
    calls = 0

    def packed_f(x: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return flatten(f(unflatten(x.reshape(x0.shape), like), *args), like).reshape(x.shape)

    solver(packed_f, x0, max_iter=max_iter, tol=0.0, stop_mode="abs")
    return calls
