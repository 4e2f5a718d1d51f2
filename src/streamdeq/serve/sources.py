"""Each served source decoded on its own thread, handing over only its latest frame.

Why one thread per source and a one-frame slot: decoding must keep up with the camera whatever
the engine does, and when the engine falls behind the right frame to process next is the newest
one. A frame replaced in the slot before the engine took it is dropped and counted, so memory
never grows with the lag.

Files play at their own rate (their timestamps), optionally looping; image folders at a given
frame rate; stream URLs as they arrive, reopened with exponential backoff whenever they end or
break off (the state is "reconnecting" meanwhile). Network sources open with FFmpeg's
``protocol_whitelist`` restricted to what their scheme needs, so a playlist or a concat list
behind a URL cannot make FFmpeg read local files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from ..data.errors import VideoError
from ..data.hardware import HardwareDecoding
from ..data.video import (
    DEFAULT_FOLDER_FPS,
    RECONNECT_FIRST_WAIT,
    RECONNECT_MAX_WAIT,
    VideoFrame,
    open_video,
)
from ..data.video import display_source as video_display_source
from ..errors import SettingsError
from ..validation import check_int, check_real
from .errors import SourceRejectedError

#: FFmpeg protocols each URL scheme may use (nested ones included: TLS under HTTPS, RTP under
#: RTSP). "file" is in none of them.
PROTOCOL_WHITELISTS: dict[str, str] = {
    "tcp": "tcp",
    "udp": "udp",
    "rtp": "rtp,udp",
    "srt": "srt,udp",
    "rtsp": "rtsp,rtp,udp,tcp",
    "rtsps": "rtsps,rtsp,rtp,udp,tcp,tls",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,rtmp,tls,tcp",
    "http": "http,tcp",
    "https": "https,tls,tcp,http",
}
STATES = ("starting", "live", "reconnecting", "failed", "ended")
#: The smallest probesize accepted: FFmpeg's own minimum is 32 bytes, but a stream probed on
#: less than a few packets opens without its frame size.
PROBESIZE_MIN = 32_768


@dataclass(frozen=True)
class SourceOptions:
    """How every served source is read.

    Attributes:
        folder_fps: frame rate of image folders (they carry none); the default is
            ``streamdeq run``'s.
        timeout: seconds a stream URL may take to open or stay silent before it counts as
            broken off (and is reopened).
        reconnect: reopen stream URLs that end or break off (backoff from 0.5 s doubling to
            ``max_wait``); False: such a stream ends ("ended", or "failed" on an error).
        max_wait: the longest wait between two reconnection attempts, seconds.
        realtime: files and folders play at their frame rate; False: as fast as they decode
            (for tests and benchmarks of the engine alone).
        probesize: bytes FFmpeg reads from a stream URL to learn its format (None: FFmpeg's
            5,000,000). It also sizes the seek-back buffer FFmpeg's MPEG-TS demuxer keeps per
            stream it cannot seek: that buffer fills as the stream arrives, so each live
            MPEG-TS camera adds up to this many bytes of resident memory over its first
            minutes (then FFmpeg frees it; the allocator tuning of ``streamdeq serve`` keeps
            the freed block for reuse, so the memory levels off rather than falls). Lower it
            (e.g. 1,000,000) to bound memory with many cameras; too low and a high-bitrate
            stream with long keyframe intervals opens without its frame size.
        hwaccel: decode files and stream URLs on this hardware decoder, e.g. "cuda:0" (NVDEC;
            see :class:`~streamdeq.data.HardwareDecoding`); None: on the CPU. A text, so that
            the options travel to decoder processes as they are.
    """

    folder_fps: float = DEFAULT_FOLDER_FPS
    timeout: float = 10.0
    reconnect: bool = True
    max_wait: float = RECONNECT_MAX_WAIT
    realtime: bool = True
    probesize: int | None = None
    hwaccel: str | None = None

    def __post_init__(self) -> None:
        if self.hwaccel is not None:
            HardwareDecoding.parse(self.hwaccel)  # the device itself is opened by the readers
        if self.probesize is not None:
            check_int("probesize", self.probesize, minimum=PROBESIZE_MIN)
        check_real("folder_fps", self.folder_fps, exclusive_minimum=0)
        check_real("timeout", self.timeout, exclusive_minimum=0)
        check_real("max_wait", self.max_wait, exclusive_minimum=0)


@dataclass(frozen=True)
class Arrival:
    """A frame handed to the engine.

    Attributes:
        frame: the decoded frame.
        index: its place in the source, counting on across loops and reconnections (frames
            the source lost included).
        timestamp: source seconds, also counting on across loops and reconnections.
        arrived_at: unix seconds when it was decoded and put in the slot.
        restarted: the first frame after a reconnection or a loop back to the start (a new
            shot: the stream's state restarts).
    """

    frame: VideoFrame
    index: int
    timestamp: float
    arrived_at: float
    restarted: bool


def normalise_scheme(source: str) -> str:
    """``source`` with its URL scheme in lower case (``HTTP://cam/x`` -> ``http://cam/x``):
    schemes are case-insensitive (RFC 3986), FFmpeg's protocol names are not."""
    scheme, separator, rest = source.partition("://")
    if separator and scheme and scheme != scheme.lower() and "/" not in scheme:
        return f"{scheme.lower()}://{rest}"
    return source


def source_kind(source: str) -> str:
    """ "url", "folder" or "file"; a URL scheme FFmpeg is not allowed here raises."""
    if "://" in source and not source.startswith("file://"):
        scheme = urlsplit(source).scheme.lower()
        if scheme not in PROTOCOL_WHITELISTS:
            raise SourceRejectedError(
                f"unsupported stream scheme {scheme + '://'!r}; use one of "
                f"{', '.join(s + '://' for s in PROTOCOL_WHITELISTS)}, a file or a folder"
            )
        return "url"
    return "folder" if Path(source.removeprefix("file://")).expanduser().is_dir() else "file"


def display_source(source: str) -> str:
    """The source as the API and the page show it: a URL without its user name and password."""
    return video_display_source(source, keep_user=False)


def ffmpeg_options(source: str, probesize: int | None = None) -> dict[str, str]:
    """FFmpeg options of a source: the protocol whitelist of its scheme ("file" for files), and
    for a URL the ``probesize`` given (see :class:`SourceOptions`)."""
    if "://" in source and not source.startswith("file://"):
        options = {"protocol_whitelist": PROTOCOL_WHITELISTS[urlsplit(source).scheme.lower()]}
        if probesize is not None:
            options["probesize"] = str(probesize)
        return options
    return {"protocol_whitelist": "file"}


class ReaderState:
    """What the service reads of a source's reader, whether it decodes on a thread here
    (:class:`SourceReader`) or in a decoder process (``decoders.ProcessSourceReader``)."""

    def __init__(self, source: str, *, loop: bool, options: SourceOptions) -> None:
        self.source = source
        self.kind = source_kind(source)
        self.loop = loop
        self.options = options
        self.state = "starting"
        self.error: str | None = None
        self.latest_index = -1
        self.size: tuple[int, int] | None = None


class SourceReader(ReaderState):
    """One source on its own thread; the engine takes its latest frame with :meth:`take`.

    Attributes (read by the service; written only by the reader thread):
        state: one of STATES; error: the last failure's message (None while all is well).
        delivered: frames put in the slot; stale: frames replaced there before the engine took
            them; lost: frames the source itself lost (did not decode); reconnects.
        size: (h, w) of the last frame.
    """

    def __init__(
        self,
        source: str,
        *,
        loop: bool,
        options: SourceOptions,
        on_frame: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(source, loop=loop, options=options)
        self.delivered = self.stale = self.lost = self.reconnects = 0
        self._on_frame = on_frame
        self._slot: Arrival | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source {source}", daemon=True)
        self._index_offset = 0
        self._time_offset = 0.0
        self._restarted = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end: at once while waiting, after the read in progress otherwise
        (a silent stream's read ends within ``timeout``); the source is closed there."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def take(self) -> Arrival | None:
        """The newest frame not taken yet (None: nothing new since the last take)."""
        with self._lock:
            arrival, self._slot = self._slot, None
        return arrival

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        wait = RECONNECT_FIRST_WAIT
        while not self._stop.is_set():
            try:
                video = open_video(
                    self.source,
                    fps=self.options.folder_fps,
                    timeout=self.options.timeout,
                    options=(
                        ffmpeg_options(self.source, self.options.probesize)
                        if self.kind != "folder"
                        else None
                    ),
                    hwaccel=self.options.hwaccel,
                )
                with video:
                    got_frames = self._play(video)
            except VideoError as error:
                got_frames, failure = False, str(error)
            except Exception as error:  # never let a source's thread die silently
                got_frames, failure = False, f"{type(error).__name__}: {error}"
            else:
                failure = None
            if self._stop.is_set():
                return
            if got_frames:
                wait = RECONNECT_FIRST_WAIT
            if self.kind == "url" and self.options.reconnect:
                self.state, self.error = "reconnecting", failure or "the stream ended"
                self._stop.wait(wait)
                wait = min(2 * wait, self.options.max_wait)
                self.reconnects += 1
                self._restarted = True
                continue
            if failure is not None:
                self.state, self.error = "failed", failure
                return
            if not (self.loop and got_frames):
                self.state = "ended"
                return
            self._restarted = True  # loop back to the start

    def _play(self, video) -> bool:
        """Hand out the frames of one opening of the source; True if any came."""
        realtime = self.options.realtime and self.kind != "url"  # a live stream paces itself
        start_wall: float | None = None
        first_time = 0.0
        last: VideoFrame | None = None
        fps = video.fps or self.options.folder_fps
        for frame in video:
            if self._stop.is_set():
                break
            if start_wall is None:
                start_wall, first_time = time.monotonic(), frame.timestamp
            if realtime:
                due = start_wall + frame.timestamp - first_time
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
            self._publish(frame)
            last = frame
        if last is not None:
            self._index_offset += last.index + 1
            self._time_offset += last.timestamp + 1.0 / fps
        return last is not None

    def _publish(self, frame: VideoFrame) -> None:
        index = self._index_offset + frame.index
        arrival = Arrival(
            frame=frame,
            index=index,
            timestamp=self._time_offset + frame.timestamp,
            arrived_at=time.time(),
            restarted=self._restarted,
        )
        with self._lock:
            if self._slot is not None:
                self.stale += 1
                if self._slot.restarted:  # the restart must not be lost with the frame
                    arrival = replace(arrival, restarted=True)
            self._slot = arrival
            self.delivered += 1
            self.lost += frame.dropped_before
            self.latest_index = index
        self._restarted = False
        self.size = (frame.height, frame.width)
        self.state, self.error = "live", None
        self._on_frame()


def check_source_options(options: object) -> SourceOptions:
    if options is None:
        return SourceOptions()
    if not isinstance(options, SourceOptions):
        raise SettingsError(f"source_options must be a SourceOptions, got {type(options).__name__}")
    return options
