"""Engine lanes: a thread with its own :class:`~streamdeq.stream.StreamBatch`, ticking over the
streams assigned to it that have a new frame, in one batched solve per tick.

Why two lanes: a batched step is as slow as its slowest group, so one fully solved baseline
stream (N iterations a frame) in the same batch as M = 2 streams would make them all wait for
it. Streams whose scheme is slow (:func:`~streamdeq.serve.settings.is_slow`) tick in the
"slow" lane instead; the "main" lane keeps its pace. The cost: the two lanes share the CPU
(or GPU) and the slow lane's streams are not batched with the fast ones.

A tick: apply the settings changed since the last tick, take each member's latest frame, step
the streams' own solves in one batch, then their compare solves (the same frames, another
scheme) in a second one, and hand the results to the service. A step that raises is retried
stream by stream, so one stream's bad frame or model error fails that stream only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..stream import StepResult, StreamBatch, StreamSettings
from .settings import compare_settings, needs_reset, stream_settings
from .sources import Arrival, SourceReader

if TYPE_CHECKING:
    from .decoders import ProcessSourceReader

#: The key of a stream's compare solve in its lane's batch: (stream id, COMPARE).
COMPARE = "compare"
#: Ticks, latencies and batch sizes kept for the recent statistics.
RECENT = 256


@dataclass
class ServedStream:
    """A stream as the service and its lane share it.

    ``config`` is (version, settings dict), replaced as a whole by the service and read by the
    lane, which applies a new version at its next tick. ``lane`` says which lane ticks it.
    """

    id: str
    source: str
    kind: str
    loop: bool
    reader: SourceReader | ProcessSourceReader
    config: tuple[int, dict[str, Any]]
    lane: str = "main"
    persist: bool = False
    engine_error: str | None = None
    # written by the lane thread only
    processed: int = 0
    resets: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    finished: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    latest: dict[str, Any] | None = None
    last_index: int = -1


@dataclass(frozen=True)
class TickResult:
    """One stream's frame in a tick: its own solve and its compare solve (None: no compare),
    with when each finished (unix seconds) and the compare step's latency."""

    arrival: Arrival
    main: StepResult
    finished_at: float
    compare: StepResult | None = None
    compare_ms: float | None = None


class LaneBatch(StreamBatch):
    """A StreamBatch whose streams can change iteration control without losing their state."""

    def retune(self, stream_id: Hashable, settings: StreamSettings) -> None:
        """New settings for a stream of the same mode: the state is kept (a warm start is as
        good for any M), the iteration controller starts afresh."""
        state = self._get(stream_id)
        state.settings = settings
        state.controller = settings.controller(self.model)


class Lane:
    """One engine thread.

    Args:
        name: "main" or "slow".
        batch: its batch (the model, device and base settings).
        base: the base StreamSettings of the streams it adds.
        members: the streams assigned to this lane now (called once per tick).
        publish: called once a tick with the (stream, TickResult) of every stream stepped
            (together, so that what is done with the results can be batched too); it fails
            a stream whose result cannot be reported, not the tick.
        fail: called with (stream id, message) when a stream's step raises.
    """

    def __init__(
        self,
        name: str,
        batch: LaneBatch,
        base: StreamSettings,
        members: Callable[[str], list[ServedStream]],
        publish: Callable[[list[tuple[ServedStream, TickResult]]], None],
        fail: Callable[[str, str], None],
    ) -> None:
        self.name = name
        self.batch = batch
        self.base = base
        self._members = members
        self._publish = publish
        self._fail = fail
        self._applied: dict[str, tuple[int, dict[str, Any]]] = {}
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lane {name}", daemon=True)
        self.ticks = 0
        self.tick_ms: deque[float] = deque(maxlen=RECENT)
        self.batch_sizes: deque[int] = deque(maxlen=RECENT)
        self.busy_s = 0.0  # time spent stepping: the lane's share of the device
        self.error: str | None = None  # the last unexpected failure of a tick, if any

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the tick in progress (for at most ``timeout`` s) and end the thread."""
        self._stop.set()
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.clear()
            try:
                busy = self.tick()
            except Exception as error:  # a bug must not end the lane: report it, go on
                self.error = f"{type(error).__name__}: {error}"
                busy = False
            if not busy:
                self.wake.wait(0.05)

    def tick(self) -> bool:
        """One tick; False when no stream had a new frame."""
        streams = self._members(self.name)
        self._sync(streams)
        work = [
            (s, a)
            for s in streams
            if s.id in self.batch and s.engine_error is None and (a := s.reader.take()) is not None
        ]
        if not work:
            return False
        start = time.perf_counter()
        for stream, arrival in work:
            if arrival.restarted:  # reconnected or looped: a new shot from zeros
                self.batch.reset(stream.id)
                if (stream.id, COMPARE) in self.batch:
                    self.batch.reset((stream.id, COMPARE))
        frames = {s.id: a.frame.image for s, a in work}
        main = self._step(frames)
        finished_at = time.time()
        compare_frames = {
            (s.id, COMPARE): a.frame.image
            for s, a in work
            if s.id in main and (s.id, COMPARE) in self.batch
        }
        compare_start = time.perf_counter()
        compare = self._step(compare_frames)
        compare_ms = (time.perf_counter() - compare_start) * 1000.0
        self.busy_s += time.perf_counter() - start
        self.ticks += 1
        self.tick_ms.append((time.perf_counter() - start) * 1000.0)
        self.batch_sizes.append(len(frames) + len(compare_frames))
        done = []
        for stream, arrival in work:
            if stream.id not in main:
                continue
            other = compare.get((stream.id, COMPARE))
            tick = TickResult(
                arrival=arrival,
                main=main[stream.id],
                finished_at=finished_at,
                compare=other,
                compare_ms=compare_ms if other is not None else None,
            )
            done.append((stream, tick))
        if done:
            try:
                self._publish(done)
            except Exception as error:  # a bug in reporting: these streams fail, not the lane
                self.error = f"{type(error).__name__}: {error}"
                for stream, _ in done:
                    self._fail(stream.id, f"its result could not be reported: {error}")
        return True

    def _step(self, frames: Mapping[Hashable, Any]) -> dict[Hashable, StepResult]:
        if not frames:
            return {}
        try:
            return self.batch.step(frames)
        except Exception:
            pass
        results = {}  # find the stream at fault: each alone, from zeros
        for key, image in frames.items():
            stream_id = key[0] if isinstance(key, tuple) else key
            try:
                self.batch.reset(key)
                results.update(self.batch.step({key: image}))
            except Exception as error:
                self._fail(stream_id, f"the model failed on its frame: {error}")
        return results

    def _sync(self, streams: list[ServedStream]) -> None:
        """Bring the batch in line with the lane's members and their settings."""
        wanted = {s.id: s for s in streams}
        for stream_id in list(self._applied):
            if stream_id not in wanted:
                self._drop(stream_id)
        for stream in streams:
            config = stream.config
            applied = self._applied.get(stream.id)
            try:
                if applied is None:
                    self._add(stream.id, config[1])
                elif applied[0] != config[0]:
                    self._change(stream.id, applied[1], config[1])
            except Exception as error:  # settings the engine refuses: this stream only
                self._fail(stream.id, f"its settings could not be applied: {error}")
            self._applied[stream.id] = config

    def _add(self, stream_id: str, settings: dict[str, Any]) -> None:
        self.batch.add_stream(stream_id, stream_settings(settings, self.base))
        other = compare_settings(settings, self.base)
        if other is not None:
            self.batch.add_stream((stream_id, COMPARE), other)

    def _drop(self, stream_id: str) -> None:
        for key in (stream_id, (stream_id, COMPARE)):
            if key in self.batch:
                self.batch.remove_stream(key)
        del self._applied[stream_id]

    def _change(self, stream_id: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        if needs_reset(old, new):
            self.batch.remove_stream(stream_id)
            self.batch.add_stream(stream_id, stream_settings(new, self.base))
        else:
            self.batch.retune(stream_id, stream_settings(new, self.base))
        key = (stream_id, COMPARE)
        if old["compare"] != new["compare"] or old["shot_policy"] != new["shot_policy"]:
            if key in self.batch:  # a new comparison starts from zeros
                self.batch.remove_stream(key)
            other = compare_settings(new, self.base)
            if other is not None:
                self.batch.add_stream(key, other)
