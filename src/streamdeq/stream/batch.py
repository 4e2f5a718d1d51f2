"""Many independent streams stepped together: one batched solver call per group of streams.

>>> batch = StreamBatch(model, iters=2)
>>> batch.add_stream("cam0")
>>> batch.add_stream("cam1", iters=4, shot_policy="reset")
>>> results = batch.step({"cam0": frame0, "cam1": frame1})   # {"cam0": StepResult, ...}

Each stream keeps its own state, settings, iteration controller and shot detector; a stream that
gets no frame in a step is left as it is. Streams join and leave between steps.

Batching: frames of the same size share ``model.inject`` and ``model.head``; solves that agree
on solver, iteration plan and shapes share one solver call (streams with different M, or frame
sizes, form separate groups). The solvers treat batch rows independently, so each stream's
results equal those of running it alone (to float tolerance), and a stream that diverges is
reset without touching the others.

Latency: every stream of a step reports the step's latency (its frames are ready together);
a stream with ``budget_ms`` budgets that shared latency, learning its own share of solve time.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch

from ..errors import SettingsError, StreamDEQError
from .info import StepResult
from .protocol import StreamableModel
from .settings import StreamSettings
from .state import StreamState
from .stepping import Clock, Pricing, Runtime, step_streams


class UnknownStreamError(StreamDEQError, KeyError):
    """A stream id that is not in the batch."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StreamBatch:
    """Independent streams of one model, stepped in batched calls.

    Args:
        model: a streamable model, in eval mode, on ``device``.
        settings: defaults of every stream added (a :class:`StreamSettings`); keyword
            ``defaults`` replace its fields, as in :class:`~streamdeq.stream.engine.StreamDEQ`.
        device, clock, pricing: as for :class:`~streamdeq.stream.engine.StreamDEQ` (pricing
            gets the timings of all the streams of a step together).
    """

    def __init__(
        self,
        model: StreamableModel,
        *,
        settings: StreamSettings | None = None,
        device: str | torch.device | None = None,
        clock: Clock | None = None,
        pricing: Pricing | None = None,
        **defaults: Any,
    ) -> None:
        self.runtime = Runtime.create(model, device, clock, pricing)
        self.model = model
        self.defaults = StreamSettings.from_options(settings, **defaults)
        self._streams: dict[Hashable, StreamState] = {}

    def add_stream(
        self, stream_id: Hashable, settings: StreamSettings | None = None, **options: Any
    ) -> StreamSettings:
        """Add a stream; ``settings`` (default: the batch's) with ``options`` replaced.
        Returns the stream's settings."""
        if stream_id in self._streams:
            raise SettingsError(f"a stream with id {stream_id!r} is already in the batch")
        resolved = StreamSettings.from_options(settings or self.defaults, **options)
        self._streams[stream_id] = StreamState(self.model, resolved)
        return resolved

    def remove_stream(self, stream_id: Hashable) -> None:
        """Drop a stream and its state."""
        self._get(stream_id)
        del self._streams[stream_id]

    def reset(self, stream_id: Hashable | None = None) -> None:
        """Reset one stream (or all): its next frame starts from zeros."""
        for state in [self._get(stream_id)] if stream_id is not None else self._streams.values():
            state.reset()

    def step(self, frames: Mapping[Hashable, object]) -> dict[Hashable, StepResult]:
        """Process one frame for each stream named in ``frames`` ({id: frame})."""
        if not isinstance(frames, Mapping):
            raise SettingsError("step() takes a mapping {stream id: frame}")
        ids = list(frames)
        states = [self._get(stream_id) for stream_id in ids]
        if not ids:
            return {}
        results = step_streams(self.runtime, states, [frames[i] for i in ids])
        return dict(zip(ids, results, strict=True))

    def settings_of(self, stream_id: Hashable) -> StreamSettings:
        return self._get(stream_id).settings

    def state_of(self, stream_id: Hashable) -> list[torch.Tensor] | None:
        """The tensors the stream's next frame starts from (None after a reset)."""
        return self._get(stream_id).z

    @property
    def stream_ids(self) -> list[Hashable]:
        return list(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def _get(self, stream_id: Hashable) -> StreamState:
        try:
            return self._streams[stream_id]
        except KeyError:
            known = ", ".join(repr(i) for i in self._streams) or "none"
            raise UnknownStreamError(
                f"no stream {stream_id!r} in the batch (streams: {known}); add it with add_stream()"
            ) from None
