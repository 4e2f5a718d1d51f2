"""Small problems with known fixed points, shared by the solver tests."""

from __future__ import annotations

import contextlib

import pytest
import torch

METHODS = ["fixed_point", "anderson", "broyden"]


class LinearContraction:
    """f([a, b], x) = [A a + C b + x, D a + E b]: a linear map on a two-tensor state whose
    fixed point is known in closed form. ``scales`` (B,) sets each sample's contraction factor,
    so samples of one batch converge at different iterations."""

    def __init__(self, bsz: int = 3, dims=(5, 3), contraction: float = 0.6, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        d = sum(dims)
        m = torch.randn(d, d, generator=gen, dtype=torch.float64)
        self.mat = contraction * m / torch.linalg.matrix_norm(m, ord=2)
        self.dims = dims
        self.bsz = bsz
        self.scales = torch.linspace(0.3, 1.0, bsz, dtype=torch.float64)
        self.x = torch.randn(bsz, dims[0], generator=gen, dtype=torch.float64)
        self.rows_seen = 0
        self.calls = 0

    def __call__(self, z, x, scales):
        self.calls += 1
        self.rows_seen += z[0].shape[0]
        flat = torch.cat([z[0], z[1].reshape(z[1].shape[0], -1)], dim=1)
        out = scales[:, None] * (flat @ self.mat.T)
        out[:, : self.dims[0]] += x
        return [out[:, : self.dims[0]], out[:, self.dims[0] :].reshape(-1, self.dims[1])]

    @property
    def args(self):
        return (self.x, self.scales)

    def zeros(self):
        return [
            torch.zeros(self.bsz, self.dims[0], dtype=torch.float64),
            torch.zeros(self.bsz, self.dims[1], dtype=torch.float64),
        ]

    def fixed_point(self):
        d = sum(self.dims)
        sols = []
        for i in range(self.bsz):
            rhs = torch.zeros(d, dtype=torch.float64)
            rhs[: self.dims[0]] = self.x[i]
            sols.append(
                torch.linalg.solve(
                    torch.eye(d, dtype=torch.float64) - self.scales[i] * self.mat, rhs
                )
            )
        sol = torch.stack(sols)
        return [sol[:, : self.dims[0]], sol[:, self.dims[0] :]]


def distance(z, w) -> torch.Tensor:
    """(B,) distance between two states."""
    return sum((a - b).reshape(a.shape[0], -1).pow(2).sum(1) for a, b in zip(z, w)).sqrt()


@contextlib.contextmanager
def forbid_host_sync():
    """Fail on the Python-level operations that read a tensor's value back to the host (the
    device->host synchronisations a fixed-budget solve must not make)."""
    names = ["__bool__", "item", "tolist", "__float__", "__int__", "nonzero", "numpy"]
    saved = {n: getattr(torch.Tensor, n) for n in names}
    saved_getitem = torch.Tensor.__getitem__

    def fail(name):
        def raiser(*_a, **_k):
            raise AssertionError(f"host synchronisation via Tensor.{name} during the solve")

        return raiser

    def getitem(self, idx):
        items = idx if isinstance(idx, tuple) else (idx,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items):
            raise AssertionError("host synchronisation via boolean-mask indexing")
        return saved_getitem(self, idx)

    try:
        for n in names:
            setattr(torch.Tensor, n, fail(n))
        torch.Tensor.__getitem__ = getitem
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.Tensor, n, fn)
        torch.Tensor.__getitem__ = saved_getitem


@pytest.fixture
def problem():
    return LinearContraction()
