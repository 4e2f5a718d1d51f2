"""The service: many sources, one model, batched solves per tick, settings changed live.

>>> service = Service(model, max_streams=16, state_file=Path("streams.state.json"))
>>> service.start()
>>> service.add_stream("rtsp://gate.local/live", stream_id="gate", settings={"iters": 2})
{'id': 'gate', 'state': 'starting', ...}
>>> service.update_settings("gate", {"compare": "baseline"})
>>> service.latest_result("gate"), service.latest_overlay("gate", "compare")
>>> service.stop()

Each source is read on its own thread (:mod:`.sources`), in a few decoder processes
(:mod:`.decoders`, through shared memory) unless ``decoder_processes=0``, and hands over only
its newest frame; two engine lanes (:mod:`.lanes`) tick over the streams with a new frame,
the fast schemes in "main", the slow ones (a fully solved baseline, a compare against it, a
tolerance) in "slow". Results are summarised at once (:mod:`.summary`), drawn only when asked for, and
pushed to subscribers latest-only (:mod:`.subscriptions`). A stream whose source fails,
stalls, sends garbage or diverges is reported in its own info; the others go on.

Streams added through the API (``persist=True``) are written to ``state_file`` and come back
at the next :meth:`start`; streams the command line or a config file adds pass
``persist=False`` and are not copied there.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch

from ..errors import SettingsError
from ..stream import StreamSettings
from ..stream.frames import PreprocessSettings
from ..tasks import model_task_name, renderer_for
from ..validation import check_int
from .config import (
    StateFileLock,
    StreamSpec,
    back_up_state,
    parse_state,
    read_state,
    save_state,
)
from .decoders import DecoderPool, auto_processes
from .errors import ConflictError, LimitError, NotFoundError, ServiceError, quoted
from .lanes import Lane, LaneBatch, ServedStream, TickResult
from .settings import (
    DEFAULT_SETTINGS,
    compare_settings,
    is_slow,
    max_iters_for,
    merge_settings,
    stream_settings,
)
from .sources import (
    SourceOptions,
    SourceReader,
    check_source_options,
    display_source,
    normalise_scheme,
    source_kind,
)
from .subscriptions import Subscription
from .summary import OverlayCache, summarizer_for

LANES = ("main", "slow")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Seconds over which a stream's achieved frame rate is measured.
FPS_WINDOW_S = 5.0


class Service:
    """Serve many streams of one model (see the module docstring).

    Args:
        model: a streamable model in eval mode on ``device`` (its task names the summaries
            and overlays: ``model.config.task``).
        device: where the streams run (default: the model's).
        max_streams: add_stream beyond this raises LimitError.
        state_file: where streams added with ``persist=True`` are kept (None: nowhere).
        defaults: the settings dict of new streams (see :mod:`.settings`).
        jpeg_quality: of the overlays.
        source_options: how sources are read (:class:`SourceOptions`).
        stream_base: the engine settings every stream starts from (solver, preprocessing);
            None: frames resized to the input size the model's weights declare, if any.
        model_name: shown in the page and the health check.
        decoder_processes: decode the sources in up to this many processes (:mod:`.decoders`;
            None: one per 16 sources, at most a quarter of the CPU cores); 0: on threads of
            this process. Processes keep dozens of cameras at 30 frames/s from slowing the
            engine down (their reader threads would hold Python's lock at every frame) and
            let decoding use cores of its own; threads cost no extra memory.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str | torch.device | None = None,
        max_streams: int = 16,
        state_file: Path | None = None,
        defaults: Mapping[str, Any] | None = None,
        jpeg_quality: int = 80,
        source_options: SourceOptions | None = None,
        stream_base: StreamSettings | None = None,
        model_name: str | None = None,
        decoder_processes: int | None = None,
    ) -> None:
        check_int("max_streams", max_streams)
        check_int("decoder_processes", decoder_processes, minimum=0, optional=True)
        if decoder_processes is None:
            decoder_processes = auto_processes()
        self.decoder_processes = decoder_processes
        check_int("jpeg_quality", jpeg_quality)
        if jpeg_quality > 95:
            raise SettingsError(f"jpeg_quality must be 1..95, got {jpeg_quality}")
        self.model = model
        self.task = model_task_name(model) or "unknown"
        self.model_name = model_name or type(model).__name__
        self.max_streams = max_streams
        self.state_file = Path(state_file) if state_file is not None else None
        self._state_lock = StateFileLock(self.state_file) if self.state_file is not None else None
        self.jpeg_quality = jpeg_quality
        self.source_options = check_source_options(source_options)
        self.base = stream_base if stream_base is not None else _base_settings(model)
        #: the most iterations a frame a stream may ask for (N, the model's full solve)
        self.max_iters = max_iters_for(model, self.base)
        self.defaults = merge_settings(DEFAULT_SETTINGS, defaults or {}, max_iters=self.max_iters)
        self.notices: list[str] = []  # what start() skipped, for the command line to show
        self._kept: list[StreamSpec] = []  # state-file streams skipped at start, kept there
        self._summarize = summarizer_for(self.task, model)
        self._decoders = (
            DecoderPool(decoder_processes, on_frame=self._wake_lanes) if decoder_processes else None
        )
        self._streams: dict[str, ServedStream] = {}
        self._overlays: dict[str, dict[str, OverlayCache]] = {}
        self._subscribers: set[Subscription] = set()
        self._lock = threading.RLock()
        self._status = "starting"
        self._lanes = {
            name: Lane(
                name,
                LaneBatch(model, settings=self.base, device=device),
                self.base,
                self._members,
                self._publish,
                self._fail,
            )
            for name in LANES
        }

    # ------------------------------------------------------------------ life cycle

    def start(self, check_source: Callable[[str], str] | None = None) -> None:
        """Start the engine lanes and the sources; bring back the streams of the state file.

        Those streams were added through the API, so with ``check_source`` (the API's
        :meth:`SourcePolicy.check <streamdeq.serve.security.SourcePolicy.check>`) each source
        passes the policy of today again: an operator who narrowed it (no ``--media-root`` any
        more, fewer schemes or hosts) does not get them back behind its back. A stream refused
        (by that policy, its id taken by a stream added before start, its settings no longer
        accepted, the most streams reached) is skipped with a line in ``notices`` and stays in the file,
        to come back at a later start that accepts it; an entry broken in itself is dropped
        from the file, which is kept as it was beside it as ``<name>.bak``."""
        with self._lock:
            if self._status != "starting":
                raise ServiceError(f"the service is {self._status}; start it once")
            if self._state_lock is not None:
                self._state_lock.acquire()
            try:
                self._restore_state(check_source)
            except BaseException:
                if self._state_lock is not None:
                    self._state_lock.release()
                raise
            self._status = "ok"
            streams = list(self._streams.values())
        for lane in self._lanes.values():
            lane.start()
        for stream in streams:
            stream.reader.start()

    def _restore_state(self, check_source: Callable[[str], str] | None) -> None:
        before = len(self.notices)
        original = None if self.state_file is None else read_state(self.state_file)
        saved = [] if original is None else parse_state(original, self.state_file, self.notices)
        broken = len(self.notices) > before
        for spec in saved:
            try:
                if check_source is not None:
                    spec = replace(spec, source=check_source(spec.source))
                self.add_spec(spec, persist=True)
            except (ServiceError, SettingsError) as error:
                self.notices.append(
                    f"state file: stream {spec.id!r} skipped, kept in the file: {error}"
                )
                self._kept.append(spec)
        if broken and original is not None:
            backup = back_up_state(self.state_file, original)
            self.notices.append(f"state file: the file as it was is kept in {backup}")

    def stop(self, timeout: float = 5.0) -> None:
        """Drain: let each lane finish its tick (at most ``timeout`` s), stop the sources,
        close the subscriptions (their readers wake with SubscriptionClosed)."""
        with self._lock:
            running = self._status == "ok"
            self._status = "stopping"
            streams = list(self._streams.values())
            subscribers = list(self._subscribers)
        deadline = time.monotonic() + timeout
        if running:
            for lane in self._lanes.values():
                lane.stop(max(0.0, deadline - time.monotonic()))
        for stream in streams:
            stream.reader.stop()
        for stream in streams:  # a read in progress ends within the source timeout
            stream.reader.join(max(0.0, min(1.0, deadline - time.monotonic())))
        if self._decoders is not None:
            self._decoders.close(max(0.5, deadline - time.monotonic()))
        for subscription in subscribers:
            subscription.close()
        if self._state_lock is not None:
            self._state_lock.release()

    # ------------------------------------------------------------------ streams

    def add_stream(
        self,
        source: str,
        *,
        stream_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
        loop: bool = False,
        persist: bool = True,
    ) -> dict:
        """Add a source (a video file, an image folder or a stream URL); returns its info.
        Does not wait for the source to open: one that cannot be opened shows "failed" (or
        "reconnecting", for a URL) with its error."""
        if not isinstance(source, str) or not source.strip():
            raise SettingsError("source must be a file, a folder or a stream URL", field="source")
        if not isinstance(loop, bool):
            raise SettingsError(f"loop must be true or false, got {loop!r}", field="loop")
        source = normalise_scheme(source)
        kind = source_kind(source)
        merged = merge_settings(self.defaults, settings or {}, max_iters=self.max_iters)
        self._check_engine_settings(merged)
        with self._lock:
            if self._status == "stopping":
                raise ServiceError("the service is stopping; no stream can be added")
            if stream_id is None:
                stream_id = self._new_id(source)
            elif not isinstance(stream_id, str) or not _ID.fullmatch(stream_id):
                raise SettingsError(
                    "stream id must be 1-64 letters, digits, '.', '_' or '-', "
                    f"got {quoted(stream_id)}",
                    field="id",
                )
            if stream_id in self._streams:
                raise ConflictError(f"a stream with id {stream_id!r} already exists")
            if len(self._streams) >= self.max_streams:
                raise LimitError(f"at most {self.max_streams} streams; remove one first")
            if self._decoders is not None:
                reader = self._decoders.reader(source, loop=loop, options=self.source_options)
            else:
                reader = SourceReader(
                    source, loop=loop, options=self.source_options, on_frame=self._wake_lanes
                )
            stream = ServedStream(
                id=stream_id,
                source=source,
                kind=kind,
                loop=loop,
                reader=reader,
                config=(0, merged),
                lane="slow" if is_slow(merged) else "main",
                persist=persist,
            )
            self._streams[stream_id] = stream
            self._overlays[stream_id] = {
                name: OverlayCache(self._renderer(), self.jpeg_quality)
                for name in ("main", "compare")
            }
            if persist:
                self._save_state()
            if self._status == "ok":
                reader.start()
            return self._info(stream)

    def add_spec(self, spec: StreamSpec, *, persist: bool) -> dict:
        """:meth:`add_stream` of a stream as a config or state file describes it."""
        return self.add_stream(
            spec.source,
            stream_id=spec.id,
            settings=spec.settings,
            loop=spec.loop,
            persist=persist,
        )

    def remove_stream(self, stream_id: str) -> None:
        """Stop a stream and forget it (and its place in the state file)."""
        with self._lock:
            stream = self._get(stream_id)
            del self._streams[stream_id]
            self._overlays.pop(stream_id, None)
            if stream.persist:
                self._save_state()
        stream.reader.stop()
        self._wake_lanes()

    def streams(self) -> list[dict]:
        with self._lock:
            streams = list(self._streams.values())
        return [self._info(s) for s in streams]

    def stream(self, stream_id: str) -> dict:
        return self._info(self._get(stream_id))

    def settings(self, stream_id: str) -> dict:
        return dict(self._get(stream_id).config[1])

    def update_settings(self, stream_id: str, changes: Mapping[str, Any]) -> dict:
        """Change a stream's settings; they apply from its next frame. A change of mode
        starts the stream's state from zeros (the schemes keep different states); a change of
        iters, tol, budget_ms or shot policy keeps the state (a warm start serves any M). A
        change that moves the stream to the other lane (to or from a slow scheme) starts it
        from zeros there. A new compare scheme starts its comparison from zeros. Returns the
        settings."""
        with self._lock:
            stream = self._get(stream_id)
            version, current = stream.config
            merged = merge_settings(current, changes, max_iters=self.max_iters)
            self._check_engine_settings(merged)
            stream.config = (version + 1, merged)
            stream.lane = "slow" if is_slow(merged) else "main"
            if stream.persist:
                self._save_state()
        self._wake_lanes()
        return dict(merged)

    # ------------------------------------------------------------------ results

    def latest_result(self, stream_id: str) -> dict | None:
        return self._get(stream_id).latest

    def latest_overlay(self, stream_id: str, lane: str = "main") -> bytes | None:
        """The latest result drawn over its frame, as JPEG (None before the first result, or
        for "compare" when the stream has no comparison). Drawn on the first request only."""
        if lane not in ("main", "compare"):
            raise SettingsError(f"lane must be main or compare, got {lane!r}", field="lane")
        self._get(stream_id)
        with self._lock:
            caches = self._overlays.get(stream_id)
        return caches[lane].jpeg() if caches is not None else None

    def subscribe(self) -> Subscription:
        """A push channel of results, latest-only per stream (see :class:`Subscription`)."""
        subscription = Subscription(on_close=self._unsubscribe)
        with self._lock:
            if self._status == "stopping":
                subscription.close()
            else:
                self._subscribers.add(subscription)
        return subscription

    # ------------------------------------------------------------------ reports

    def health(self) -> dict:
        infos = self.streams()
        return {
            "status": self._status,
            "model_loaded": True,
            "streams": len(infos),
            "live": sum(info["state"] == "live" for info in infos),
        }

    def summary(self) -> dict:
        with self._lock:
            streams = list(self._streams.values())
        latencies = [v for s in streams for v in list(s.latencies_ms)]
        ticks = [v for lane in self._lanes.values() for v in list(lane.tick_ms)]
        sizes = [v for lane in self._lanes.values() for v in list(lane.batch_sizes)]
        infos = [self._info(s) for s in streams]
        return {
            "streams": len(infos),
            "live": sum(info["state"] == "live" for info in infos),
            "total_fps": round(sum(info["fps"] for info in infos), 2),
            "latency_ms": _percentiles(latencies),
            "tick_ms": _percentiles(ticks),
            "batch_size": {
                "mean": round(float(np.mean(sizes)), 2) if sizes else None,
                "max": int(max(sizes)) if sizes else None,
            },
        }

    def metrics(self) -> dict:
        """Counters for Prometheus: per stream, and the recent ticks of both lanes (plus, per
        lane, its tick count and the seconds it spent stepping), and the decoder processes
        restarted."""
        with self._lock:
            streams = list(self._streams.values())
        return {
            "streams": {
                s.id: {
                    "frames": s.processed,
                    "drops": s.reader.stale + s.reader.lost,
                    "resets": s.resets,
                    "reconnects": s.reader.reconnects,
                    "lag_frames": float(max(0, s.reader.latest_index - s.last_index)),
                }
                for s in streams
            },
            "ticks": sum(lane.ticks for lane in self._lanes.values()),
            "decoder_restarts": self._decoders.restarts if self._decoders is not None else 0,
            "recent_tick_ms": [v for lane in self._lanes.values() for v in list(lane.tick_ms)],
            "recent_batch_sizes": [
                v for lane in self._lanes.values() for v in list(lane.batch_sizes)
            ],
            "lanes": {
                name: {
                    "ticks": lane.ticks,
                    "busy_seconds": round(lane.busy_s, 3),
                    "error": lane.error,
                }
                for name, lane in self._lanes.items()
            },
        }

    # ------------------------------------------------------------------ internals

    def _info(self, stream: ServedStream) -> dict:
        reader = stream.reader
        state, error = reader.state, reader.error
        if stream.engine_error is not None:
            state, error = "failed", stream.engine_error
        return {
            "id": stream.id,
            "source": display_source(stream.source),
            "kind": stream.kind,
            "loop": stream.loop,
            "state": state,
            "error": error,
            "settings": dict(stream.config[1]),
            "frames": stream.processed,
            "drops": reader.stale + reader.lost,
            "resets": stream.resets,
            "reconnects": reader.reconnects,
            "fps": _recent_fps(stream.finished),
            "latency_ms": _percentiles(list(stream.latencies_ms)),
            "lane": stream.lane,
            "size": list(reader.size) if reader.size is not None else None,
        }

    def _get(self, stream_id: str) -> ServedStream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise NotFoundError(f"no stream {quoted(stream_id)}")
        return stream

    def _members(self, lane: str) -> list[ServedStream]:
        with self._lock:
            return [s for s in self._streams.values() if s.lane == lane and s.engine_error is None]

    def _publish(self, done: list[tuple[ServedStream, TickResult]]) -> None:
        """A tick's frames are done (on its lane's thread): summarise them together, then
        record and push each. A stream whose result cannot be reported fails alone."""
        mains = self._summaries([tick.main.output for _, tick in done])
        compared = [tick.compare.output for _, tick in done if tick.compare is not None]
        compares = iter(self._summaries(compared))
        for (stream, tick), summary in zip(done, mains, strict=True):
            compare = next(compares) if tick.compare is not None else None
            failure = next((s for s in (summary, compare) if isinstance(s, Exception)), None)
            if failure is not None:
                self._fail(stream.id, f"its result could not be reported: {failure}")
                continue
            try:
                self._publish_one(stream, tick, summary, compare)
            except Exception as error:
                self._fail(stream.id, f"its result could not be reported: {error}")

    def _summaries(self, outputs: list[Any]) -> list[dict | Exception]:
        """The task's summaries of a tick's outputs, in one batch; if the batch fails, output
        by output, so that only the output at fault fails (its exception in its place)."""
        if not outputs:
            return []
        try:
            summaries = list(self._summarize(outputs))
            if len(summaries) == len(outputs):
                return summaries
        except Exception:
            pass
        results: list[dict | Exception] = []
        for output in outputs:
            try:
                results.append(self._summarize([output])[0])
            except Exception as error:  # e.g. an output its task's summary cannot read
                results.append(error)
        return results

    def _publish_one(
        self, stream: ServedStream, tick: TickResult, summary: dict, compare_summary: dict | None
    ) -> None:
        """Record one stream's frame, its latest result and overlay, and push it."""
        info = tick.main.info
        arrival = tick.arrival
        latency_ms = (tick.finished_at - arrival.arrived_at) * 1000.0
        reset = None if info.reset is None else info.reset.value
        if arrival.restarted:
            reset = "restart"
        stream.processed += 1
        # the engine's own resets (shot change, divergence, size change); a loop back to a
        # file's start or a reconnection is not one (reconnections have their own counter)
        stream.resets += info.reset is not None and info.index > 0 and not arrival.restarted
        stream.latencies_ms.append(latency_ms)
        stream.finished.append(tick.finished_at)
        stream.last_index = arrival.index
        compare = None
        if tick.compare is not None:
            compare = {
                "iters": tick.compare.info.iters,
                "latency_ms": round(tick.compare_ms or 0.0, 3),
                "residual": _finite(tick.compare.info.residual_after),
                "summary": compare_summary,
            }
        result = {
            "stream": stream.id,
            "frame_index": arrival.index,
            "processed": stream.processed,
            "timestamp": round(arrival.timestamp, 6),
            "arrived_at": arrival.arrived_at,
            "finished_at": tick.finished_at,
            "latency_ms": round(latency_ms, 3),
            "iters": info.iters,
            "residual": _finite(info.residual_after),
            "shot_change": info.shot_change,
            "reset": reset,
            "drops": stream.reader.stale + stream.reader.lost,
            "summary": summary,
            "compare": compare,
        }
        with self._lock:
            if self._streams.get(stream.id) is not stream:  # removed during the tick
                return
            stream.latest = result
            caches = self._overlays.get(stream.id)
            subscribers = list(self._subscribers)
        if caches is not None:
            caches["main"].offer(arrival.frame.image, tick.main.output)
            if tick.compare is not None:
                caches["compare"].offer(arrival.frame.image, tick.compare.output)
        for subscription in subscribers:
            subscription.offer(result)

    def _fail(self, stream_id: str, message: str) -> None:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is not None:
            stream.engine_error = message
            stream.reader.stop()

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def _wake_lanes(self) -> None:
        # called by every source on every frame: setting an Event takes its lock, and dozens
        # of source threads queueing on that lock (and then on the GIL) starve the lanes, so
        # an Event already set (the lane has not cleared it for its next tick yet) is left
        # alone: reading it takes no lock
        for lane in self._lanes.values():
            if not lane.wake.is_set():
                lane.wake.set()

    def _renderer(self) -> Any:
        """A fresh renderer of the model's task (each stream lane draws with its own: a
        renderer may remember the previous frame); None for a task without one."""
        try:
            return renderer_for(self.model)[1]
        except SettingsError:
            return None

    def _check_engine_settings(self, settings: dict[str, Any]) -> None:
        """What the engine itself would refuse, refused now (not at the stream's next tick)."""
        stream_settings(settings, self.base)
        compare_settings(settings, self.base)

    def _new_id(self, source: str) -> str:
        """A readable id from the source's name (host for URLs), unique among the streams."""
        if "://" in source and not source.startswith("file://"):
            name = urlsplit(source).hostname or "stream"
            path = urlsplit(source).path.strip("/").split("/")[-1]
            name = path or name
        else:
            name = Path(source.removeprefix("file://")).stem or "stream"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:48] or "stream"
        candidate, n = stem, 2
        while candidate in self._streams:
            candidate, n = f"{stem}-{n}", n + 1
        return candidate

    def _save_state(self) -> None:
        """The API's streams, and after them those skipped at start (unless a stream added
        since has taken the id: the newer one is what the operator wants under it)."""
        if self.state_file is None:
            return
        specs = [
            StreamSpec(source=s.source, id=s.id, loop=s.loop, settings=s.config[1])
            for s in self._streams.values()
            if s.persist
        ]
        taken = {spec.id for spec in specs}
        self._kept = [spec for spec in self._kept if spec.id not in taken]
        save_state(self.state_file, specs + self._kept)


def _base_settings(model: Any) -> StreamSettings:
    """Frames resized to the input size the model's weights declare (as ``streamdeq run``
    does), on top of the normalisation the stream takes from the model."""
    size = getattr(getattr(model, "pretrained_info", None), "input_size", None)
    settings = StreamSettings()
    if size is None:
        return settings
    preprocess = settings.preprocess_for(model)
    return StreamSettings(
        preprocess=PreprocessSettings(mean=preprocess.mean, std=preprocess.std, resize=tuple(size))
    )


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}


def _recent_fps(finished: Any) -> float:
    """Results per second over the last FPS_WINDOW_S seconds (0 when idle)."""
    times = list(finished)
    now = time.time()
    recent = [t for t in times if now - t <= FPS_WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0], 1e-6)
    return round((len(recent) - 1) / span, 3) if span > 0 else 0.0


def _finite(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None
