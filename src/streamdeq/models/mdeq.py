"""The MDEQ model split into the parts a solver or a stream calls separately:
``inject`` (once per frame), ``init_state``, ``f`` (per solver step), ``head`` (once per output).

Per-forward caches. ``inject`` is the start of a forward pass: it recomputes the
weight-normalised weights (every later ``f`` reuses them; ``f`` sees parameter changes only
after the next ``inject``, or after ``load_state_dict``/``.to()``, which drop the cache) and, in training mode, draws new variational dropout masks for the
batch. Masks are per sample, so a solver that drops converged rows must drop the same rows of the
masks: :meth:`MDEQModel.solve` and :meth:`MDEQModel.forward` therefore pass them to the solver as
an argument of f next to the injection (solvers slice all of f's arguments together). Calling
``f(z, injection)`` without masks in training mode uses the masks of the last ``inject``, which
only fit the whole batch. In eval mode there is no dropout and f treats rows independently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._deprecated import warn_deprecated
from ..deq import BackwardSettings, equilibrium, unrolled_forward
from ..solvers import SolverResult, solve
from ..solvers.base import channels_last
from .heads import build_head
from .layers import WeightNormConv2d, refresh_weights
from .multiscale import DropoutMasks, MultiscaleBlock

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import MDEQConfig

#: The official Broyden tolerance: 1e-5 * sqrt(number of state elements) (absolute residual).
OFFICIAL_TOL_FACTOR = 1e-5


@dataclass(frozen=True)
class ForwardResult:
    """A forward pass with what it found on the way, returned rather than left on the model
    so that concurrent or nested forwards cannot overwrite each other's results.

    Attributes:
        output: what ``model(x)`` returns (logits; for a detector, losses or detections).
        z: the state the head was applied to, one (B, C_i, H_i, W_i) tensor per branch (with
            its graph in training mode).
        solver: the forward solve's :class:`SolverResult` (None after unrolled pretraining).
        jac_loss: the scalar Jacobian penalty (None unless ``jac_samples`` > 0 in training).
    """

    output: Any
    z: list[Tensor]
    solver: SolverResult | None
    jac_loss: Tensor | None


class MDEQModel(nn.Module):
    """A multiscale deep equilibrium model: stem -> injection -> z* = f(z*, injection) -> head.

    Attributes:
        config: the :class:`MDEQConfig` it was built from.

    :meth:`forward_with_info` returns the solver result and Jacobian penalty with the output.
    """

    def __init__(self, config: MDEQConfig) -> None:
        super().__init__()
        self.config = config
        self.downsample = _stem(config)
        # CIFAR's 2-branch model injects the stem's output directly
        has_stage0 = not (config.downsample_times == 0 and config.num_branches <= 2)
        self.stage0 = _injection_layer(config) if has_stage0 else None
        self.fullstage = MultiscaleBlock(config)
        self.task_head = build_head(config)
        # backing the deprecated last_* properties only; read forward_with_info's result
        self._last_solver_result: SolverResult | None = None
        self._last_jac_loss: Tensor | None = None
        self._dropout_masks: DropoutMasks | None = None
        init_weights(self)

    def __getstate__(self) -> dict:
        # per-forward results may hold a graph, which deepcopy (e.g. an EMA copy) and pickle refuse
        state = super().__getstate__()
        return {**state, "_last_jac_loss": None}

    @property
    def last_solver_result(self) -> SolverResult | None:
        """Deprecated: the last solve's result; use ``forward_with_info(x).solver``."""
        warn_deprecated("MDEQModel.last_solver_result", "forward_with_info(x).solver")
        return self._last_solver_result

    @property
    def last_jac_loss(self) -> Tensor | None:
        """Deprecated: the last Jacobian penalty; use ``forward_with_info(x).jac_loss``."""
        warn_deprecated("MDEQModel.last_jac_loss", "forward_with_info(x).jac_loss")
        return self._last_jac_loss

    @property
    def input_multiple(self) -> int:
        """Input heights and widths must be multiples of this (every branch halves the size)."""
        return 2 ** (self.config.downsample_times + self.config.num_branches - 1)

    # ------------------------------------------------------------------ the parts

    def inject(self, x: Tensor) -> list[Tensor | None]:
        """The per-branch injection of an input batch, and the start of a forward pass.

        Args:
            x: (B, 3, H, W) normalised images, H and W multiples of ``input_multiple``.

        Returns:
            [u_0, None, ...]: u_0 (B, C_0, H_0, W_0) for branch 0 (H_0 = H / 2**downsample_times);
            the other branches get no injection (None stands for zero and costs nothing).
        """
        self._check_input(x)
        refresh_weights(self.fullstage)
        self._dropout_masks = None
        if self.training and self.config.dropout > 0:
            self._dropout_masks = self.fullstage.new_dropout_masks(x)
        u = self.downsample(x)
        if self.stage0 is not None:
            u = self.stage0(u)
        return [u] + [None] * (self.config.num_branches - 1)

    def init_state(self, injection: Sequence[Tensor | None]) -> list[Tensor]:
        """z = 0: (B, C_i, H_0 / 2**i, W_0 / 2**i) zeros for each branch i."""
        u = injection[0]
        bsz, _, height, width = u.shape
        layout = torch.channels_last if channels_last(u) else torch.contiguous_format
        return [
            torch.empty(
                bsz,
                c,
                height >> i,
                width >> i,
                dtype=u.dtype,
                device=u.device,
                memory_format=layout,
            ).zero_()
            for i, c in enumerate(self.config.num_channels)
        ]

    def f(
        self,
        z: Sequence[Tensor],
        injection: Sequence[Tensor | None],
        dropout_masks: DropoutMasks | None = None,
    ) -> list[Tensor]:
        """One application of the multiscale layer: f(z, injection), same shapes as ``z``.

        Rows are independent in eval mode, so any batch subset of (z, injection) works. In
        training mode pass the masks of the same rows (see the module docstring); without them
        the masks drawn by the last ``inject`` are used, which fit the full batch only.
        """
        masks = None
        if self.training:
            masks = self._dropout_masks if dropout_masks is None else dropout_masks
            if masks is not None and masks[0][0].shape[0] != z[0].shape[0]:
                raise ValueError(
                    f"f got {z[0].shape[0]} rows but the dropout masks are for "
                    f"{masks[0][0].shape[0]}; in training mode pass the masks of the same rows "
                    "as f's third argument (MDEQModel.solve does)"
                )
        return self.fullstage(z, injection, masks)

    def head(self, z: Sequence[Tensor]) -> Tensor:
        """Task logits: (B, classes, H_0, W_0) for segmentation, (B, classes) for classification."""
        return self.task_head(z)

    # ------------------------------------------------------------------ solving

    def solve(
        self,
        x: Tensor,
        z0: Sequence[Tensor] | None = None,
        solver: str = "broyden",
        max_iter: int | None = None,
        tol: float | None = None,
        **solver_options,
    ) -> tuple[list[Tensor], SolverResult]:
        """Inject ``x`` and solve z = f(z, injection) from ``z0`` (zeros if None), without a
        graph through the solver's iterations.

        Args:
            solver: a name from :func:`streamdeq.solvers.list_solvers`.
            max_iter: iteration budget; None = ``config.f_thres`` (N).
            tol: stop tolerance (None: a fixed budget).
            solver_options: ``stop_mode`` and method-specific options of
                :func:`streamdeq.solvers.solve`. The official forward solve is
                ``solver="broyden", parity=True, stop_mode="abs", tol=official_tol(...)``.

        Returns:
            (z, result): the state (one (B, C_i, H_i, W_i) tensor per branch) and the solve's
            :class:`SolverResult`.
        """
        injection = self.inject(x)
        start = self.init_state(injection) if z0 is None else list(z0)
        with torch.no_grad():
            result = solve(
                self.f,
                start,
                self.f_args(injection),
                method=solver,
                max_iter=self.config.f_thres if max_iter is None else max_iter,
                tol=tol,
                **solver_options,
            )
        self._last_solver_result = result
        return result.z, result

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Logits of a (B, 3, H, W) batch. The arguments are :meth:`forward_with_info`'s, which
        also says how the logits came about (fixed point, solver result, Jacobian penalty)."""
        return self.forward_with_info(x, *args, **kwargs).output

    def forward_with_info(
        self,
        x: Tensor,
        max_iter: int | None = None,
        solver: str = "broyden",
        tol: float | None = None,
        train_step: int = -1,
        *,
        backward: BackwardSettings | None = None,
        jac_samples: int = 0,
        **solver_options,
    ) -> ForwardResult:
        """The forward pass of a (B, 3, H, W) batch with its fixed point, solver result and
        Jacobian penalty (``output`` is what ``model(x)`` returns). It is called directly, not
        through ``__call__``, so module hooks do not run for it.

        Eval mode: solve (see :meth:`solve`) and apply the head. Training mode: during the
        first ``config.pretrain_steps`` steps (0 <= ``train_step`` < pretrain_steps) f is
        unrolled ``config.num_layers`` times from zeros, as the official pretraining does;
        otherwise the fixed point comes from :func:`streamdeq.deq.equilibrium` with gradients
        as ``backward`` says (default: implicit, ``config.b_thres`` Broyden iterations; the
        official code uses ``f_thres`` there) and a Jacobian penalty of ``jac_samples`` probes.
        """
        self._last_jac_loss = None
        if not self.training:
            z, result = self.solve(x, solver=solver, max_iter=max_iter, tol=tol, **solver_options)
            return ForwardResult(self.head(z), z, result, None)
        injection = self.inject(x)
        args = self.f_args(injection)
        z0 = self.init_state(injection)
        if 0 <= train_step < self.config.pretrain_steps:
            self._last_solver_result = None
            z = unrolled_forward(self.f, z0, args, self.config.num_layers)
            return ForwardResult(self.head(z), z, None, None)
        z, result, jac_loss = equilibrium(
            self.f,
            z0,
            args,
            forward_solver=solver,
            f_thres=self.config.f_thres if max_iter is None else max_iter,
            forward_tol=tol,
            forward_options=solver_options,
            backward=backward or BackwardSettings(max_iter=self.config.b_thres),
            jac_samples=jac_samples,
        )
        self._last_solver_result = result
        self._last_jac_loss = jac_loss
        return ForwardResult(self.head(z), z, result, jac_loss)

    def f_args(self, injection: list[Tensor | None]) -> tuple:
        # masks travel with the injection so that solvers slice them with the same rows
        if self.training and self._dropout_masks is not None:
            return (injection, self._dropout_masks)
        return (injection,)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        m = self.input_multiple
        height, width = x.shape[-2:]
        if height % m or width % m:
            raise ValueError(
                f"input size {height}x{width} is not a multiple of {m} (model.input_multiple: "
                f"{self.config.num_branches} branches, {self.config.downsample_times} stem "
                f"downsamplings); pad or resize to e.g. "
                f"{math.ceil(height / m) * m}x{math.ceil(width / m) * m}"
            )


def official_tol(z: Sequence[Tensor]) -> float:
    """The official forward tolerance for one sample's state: 1e-5 * sqrt(numel of a sample).

    (The official code uses the whole batch's element count; for batch size 1 they agree.)"""
    return OFFICIAL_TOL_FACTOR * math.sqrt(sum(t[0].numel() for t in z))


def _stem(config: MDEQConfig) -> nn.Sequential:
    """conv3x3 + BN + ReLU twice; each conv has stride 2 while downsample_times allows."""
    c = config.num_channels[0]
    strides = [2 if config.downsample_times > k else 1 for k in range(2)]
    return nn.Sequential(
        nn.Conv2d(3, c, 3, stride=strides[0], padding=1, bias=False),
        nn.BatchNorm2d(c, momentum=config.bn_momentum),
        nn.ReLU(inplace=True),
        nn.Conv2d(c, c, 3, stride=strides[1], padding=1, bias=False),
        nn.BatchNorm2d(c, momentum=config.bn_momentum),
        nn.ReLU(inplace=True),
    )


def _injection_layer(config: MDEQConfig) -> nn.Sequential:
    c = config.num_channels[0]
    return nn.Sequential(
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, momentum=config.bn_momentum),
        nn.ReLU(),
    )


def init_weights(model: nn.Module) -> None:
    """The official initialisation: plain convs (stem, fusion, heads) and their biases from
    N(0, 0.01), BatchNorm to identity. Weight-normalised convs keep PyTorch's default conv init
    (the official init never reaches their g and v), and so does the linear classifier."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.normal_(module.bias, 0.0, 0.01)
        elif isinstance(module, nn.BatchNorm2d) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, WeightNormConv2d) and not module.wnorm:
            nn.init.normal_(module.weight, 0.0, 0.01)
