"""Tiny seeded DEQ cells with a two-tensor state, and reference gradients to check against."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamdeq.deq import equilibrium, unrolled_forward
from streamdeq.solvers import solve


class TanhCell(nn.Module):
    """f([a, b], x) = tanh(W [a; b] + U x + c), split into a (B, 4) and a (B, 2, 3) tensor.

    W has spectral norm ``contraction`` so f is a contraction; ``scales`` (B,) optionally scales
    W per sample (passed as an argument, so the solvers slice it with the rows) to make samples
    converge at different iterations."""

    dims = (4, 6)

    def __init__(self, contraction: float = 0.5, in_dim: int = 3, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        d = sum(self.dims)
        w = torch.randn(d, d, generator=gen, dtype=torch.float64)
        self.weight = nn.Parameter(contraction * w / torch.linalg.matrix_norm(w, ord=2))
        self.inject = nn.Parameter(torch.randn(d, in_dim, generator=gen, dtype=torch.float64))
        self.bias = nn.Parameter(0.1 * torch.randn(d, generator=gen, dtype=torch.float64))

    def forward(self, z, x, scales=None):
        flat = torch.cat([z[0], z[1].reshape(z[1].shape[0], -1)], dim=1)
        pre = flat @ self.weight.T
        if scales is not None:
            pre = scales[:, None] * pre
        out = torch.tanh(pre + x @ self.inject.T + self.bias)
        return [out[:, : self.dims[0]], out[:, self.dims[0] :].reshape(-1, 2, 3)]

    def zeros(self, bsz: int):
        return [
            torch.zeros(bsz, self.dims[0], dtype=torch.float64),
            torch.zeros(bsz, 2, 3, dtype=torch.float64),
        ]


class ConvCell(nn.Module):
    """A two-resolution conv cell with GroupNorm, MDEQ-like:
    z1' = 0.5 tanh(GN(conv(z1) + x1)), z2' = 0.5 tanh(GN(conv(z2) + pool(z1) + x2)),
    with the injection a list [x1 (B, 4, 6, 6), x2 (B, 4, 3, 3)]."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1).double()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1).double()
        self.norm1 = nn.GroupNorm(2, 4).double()
        self.norm2 = nn.GroupNorm(2, 4).double()
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.mul_(0.5)
            for norm in (self.norm1, self.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.2, 0.2)

    def forward(self, z, injection):
        x1, x2 = injection
        z1 = 0.5 * torch.tanh(self.norm1(self.conv1(z[0]) + x1))
        pooled = nn.functional.avg_pool2d(z[0], 2)
        z2 = 0.5 * torch.tanh(self.norm2(self.conv2(z[1]) + pooled + x2))
        return [z1, z2]

    def zeros(self, bsz: int):
        return [
            torch.zeros(bsz, 4, 6, 6, dtype=torch.float64),
            torch.zeros(bsz, 4, 3, 3, dtype=torch.float64),
        ]


def converged(f, args, like, tol: float = 1e-13):
    """The fixed point to (nearly) machine precision, without a graph."""
    with torch.no_grad():
        result = solve(
            f, None, args, method="anderson", max_iter=300, tol=tol, stop_mode="abs", like=like
        )
    assert result.abs_residual.max() < 1e-10
    return result.z


def probe_loss(z, seed: int = 1):
    """A fixed random linear functional of the state, so its gradient is a generic vector."""
    gen = torch.Generator().manual_seed(seed)
    return sum((torch.randn(t.shape, generator=gen, dtype=t.dtype) * t).sum() for t in z)


def leaf_grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


def unrolled_grads(f, args, like, tensors, num_layers: int = 200):
    """Gradients of the probe loss by backprop through a long weight-tied unrolling."""
    z = unrolled_forward(f, None, args, num_layers, like=like)
    return leaf_grads(probe_loss(z), tensors)


def directional_fd(f, args, like, tensor, direction, h: float = 1e-5):
    """d/dt probe_loss(z*(tensor + t direction)) at t = 0 by central differences."""
    with torch.no_grad():
        saved = tensor.detach().clone()
        values = []
        for sign in (1.0, -1.0):
            tensor.copy_(saved + sign * h * direction)
            values.append(probe_loss(converged(f, args, like)))
        tensor.copy_(saved)
    return (values[0] - values[1]) / (2 * h)


def layer_grads(f, args, like, leaves, backward):
    """Gradients of the probe loss through :func:`equilibrium` with a fully converged forward."""
    z, _, _ = equilibrium(
        f,
        None,
        args,
        like=like,
        backward=backward,
        f_thres=200,
        forward_tol=1e-13,
        forward_options={"stop_mode": "abs"},
    )
    return torch.autograd.grad(probe_loss(z), leaves)


def assert_matches_fd(f, args, like, leaf, grad, gen, rtol: float = 1e-8):
    """The gradient's directional derivative along a random direction equals central
    differences of the converged fixed point."""
    direction = torch.randn(leaf.shape, generator=gen, dtype=leaf.dtype)
    fd = directional_fd(f, args, like, leaf, direction)
    assert abs(float((grad * direction).sum() - fd)) < rtol * max(1.0, abs(float(fd)))


def max_rel_error(got, want) -> float:
    """max over tensors of ||got - want|| / ||want||."""
    return max(float((g - w).norm() / w.norm()) for g, w in zip(got, want))


@pytest.fixture
def tanh_cell():
    return TanhCell()


@pytest.fixture
def conv_cell():
    return ConvCell()
