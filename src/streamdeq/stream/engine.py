"""StreamDEQ: one video stream through a deep equilibrium model, frame by frame, online.

>>> stream = StreamDEQ(model, iters=2)                 # the paper's StreamDEQ, M = 2
>>> for frame in frames:                                # (H, W, 3) uint8 arrays, as decoded
...     result = stream.step(frame)
...     result.output, result.info.iters, result.info.latency_ms

The schemes (``mode``), with N = ``model.config.f_thres`` and M the iterations per frame:

* "stream" (paper Eq. 5): zeros on the first frame, then z_t[0] = z_{t-1}[M];
* "baseline": every frame from zeros with N iterations;
* "keyframe" (Eq. 4): the first frame with N iterations, then M a frame from the previous state;
* "reference" (Eq. 3, for analysis): each frame starts from the previous frame's fully solved
  state, which costs a full solve (N iterations from zeros) per frame besides. The first frame
  has no previous one and starts from zeros.

After any reset (first frame, new frame size, a cut under the "reset" shot policy, divergence,
:meth:`StreamDEQ.reset`) the stream starts again as on its first frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import SettingsError
from .budget import BudgetSettings, IterationController
from .frames import PreprocessSettings
from .info import StepResult
from .protocol import StreamableModel
from .settings import StreamSettings
from .shots import ShotSettings
from .state import StreamState
from .stepping import Clock, Pricing, Runtime, step_streams


class StreamDEQ:
    """One stream's state and its per-frame step.

    Args:
        model: a streamable model (:class:`~streamdeq.stream.protocol.StreamableModel`), in
            eval mode, on ``device``.
        iters: M, iterations per frame (default 4 when neither ``tol`` nor ``budget_ms``).
        mode: "stream", "baseline", "keyframe" or "reference" (module docstring).
        settings: a whole :class:`StreamSettings`; the other keywords replace its fields.
        device: where frames and state live (default: the model's device).
        clock: seconds as a float, for latencies and the time budget (default
            ``time.perf_counter``).
        pricing: what each step is charged instead of its measured time (see
            :class:`~streamdeq.stream.stepping.Runtime`); for simulated clocks.

    The other keywords are the fields of :class:`StreamSettings` (``solver``, ``tol``,
    ``budget_ms``, ``max_iter_cap``, ``f_thres``, ``solver_options``, ``measure_after``,
    ``diverge_residual``, ``shots``, ``preprocess``, ``budget``), plus ``shot_policy``
    ("keep", "reset", "boost") as a shortcut. Unknown or conflicting settings raise
    :class:`~streamdeq.errors.SettingsError`.
    """

    def __init__(
        self,
        model: StreamableModel,
        iters: int | None = None,
        mode: str | None = None,
        *,
        solver: str | None = None,
        tol: float | None = None,
        budget_ms: float | None = None,
        max_iter_cap: int | None = None,
        f_thres: int | None = None,
        solver_options: Mapping[str, Any] | None = None,
        measure_after: bool | None = None,
        diverge_residual: float | None = None,
        shot_policy: str | None = None,
        shots: ShotSettings | None = None,
        preprocess: PreprocessSettings | None = None,
        budget: BudgetSettings | None = None,
        settings: StreamSettings | None = None,
        device: str | torch.device | None = None,
        clock: Clock | None = None,
        pricing: Pricing | None = None,
        **unknown: Any,
    ) -> None:
        # each keyword by name, so a setting can be followed from here to where it is used;
        # None means "not given", so ``settings`` (or the defaults) keeps its value
        options = {
            "iters": iters,
            "mode": mode,
            "solver": solver,
            "tol": tol,
            "budget_ms": budget_ms,
            "max_iter_cap": max_iter_cap,
            "f_thres": f_thres,
            "solver_options": solver_options,
            "measure_after": measure_after,
            "diverge_residual": diverge_residual,
            "shot_policy": shot_policy,
            "shots": shots,
            "preprocess": preprocess,
            "budget": budget,
        }
        given = {name: value for name, value in options.items() if value is not None}
        # ``unknown`` goes on so that from_options names the closest setting for a typo (and
        # still takes a deprecated name, with its warning)
        self.settings = StreamSettings.from_options(settings, **given, **unknown)
        self.runtime = Runtime.create(model, device, clock, pricing)
        self.model = model
        self._state = StreamState(model, self.settings)

    def step(self, frame: object) -> StepResult:
        """Process the next frame.

        Args:
            frame: (H, W, 3) uint8 (numpy or torch) or float in [0, 1], or a (3, H, W) /
                (1, 3, H, W) float tensor in [0, 1]; RGB.

        Returns:
            the head's output for the frame (e.g. (classes, h, w) logits, padding cropped) and
            its :class:`~streamdeq.stream.info.FrameInfo`.
        """
        return step_streams(self.runtime, [self._state], [frame])[0]

    def reset(self) -> None:
        """Drop the state; the next frame starts from zeros (its info says "manual")."""
        self._state.reset()

    @property
    def frame_index(self) -> int:
        """The index the next frame will get (frames processed so far)."""
        return self._state.index

    @property
    def state(self) -> list[torch.Tensor] | None:
        """The tensors the next frame starts from (None after a reset and in baseline mode)."""
        return self._state.z

    @property
    def controller(self) -> IterationController:
        """The iteration controller (FixedIterations, ToleranceIterations or TimeBudget)."""
        return self._state.controller

    @controller.setter
    def controller(self, controller: IterationController) -> None:
        """Replace the iteration controller: a scheduler that decides M per frame (e.g. from a
        deadline, :class:`streamdeq.streaming.schedulers.FitInterval`) plugs in here."""
        if not (
            callable(getattr(controller, "plan", None))
            and callable(getattr(controller, "observe", None))
        ):
            raise SettingsError("an iteration controller needs plan() and observe() methods")
        self._state.controller = controller
