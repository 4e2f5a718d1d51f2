"""Reading video lazily, frame by frame: files, folders of images and network streams, via PyAV.

``open_video(source)`` checks the input at once (so a bad path fails before any model is built)
and returns a :class:`VideoSource`; iterating it decodes one :class:`VideoFrame` at a time::

    with open_video("clip.mp4", max_frames=100) as video:
        print(video.fps, video.size, video.frame_count)
        for frame in video:
            frame.image  # (H, W, 3) uint8 RGB

Bad input inside a readable source is skipped, as FFmpeg's own tools do: an image that does not
decode, a packet the decoder rejects, a stretch of a stream the demuxer had to resynchronise over.
The next frame says how many were lost before it (``VideoFrame.dropped_before``) and the source
counts them (``dropped``, ``decode_errors``); frames the decoder flags as corrupt (concealed
errors) are kept and counted (``damaged``). Garbage that still decodes into a plausible picture
cannot be told from a good frame. With ``strict=True`` the first bad frame raises instead.

What cannot be skipped raises :class:`CorruptVideoError` with ``frames_read`` = the number of
frames already handed out, so the caller can finish its outputs with exactly those: a file that
ends short of what its header declares, a stream that breaks off or goes silent (unless
``reconnect`` seconds are given: then it is opened again, with backoff), and a source in which
no frame at all decodes.
"""

from __future__ import annotations

import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import SettingsError
from .errors import (
    CorruptVideoError,
    InputNotFoundError,
    InputNotReadableError,
    NoImagesError,
    NotAVideoError,
    StreamOpenError,
    VideoError,
)
from .hardware import HardwareDecoding

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FOLDER_FPS = 25.0  # image folders carry no frame rate; Cityscapes sequences are 17 fps
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp")
#: Reconnect backoff: the first wait, doubled after each failed attempt up to the cap (seconds).
RECONNECT_FIRST_WAIT, RECONNECT_MAX_WAIT = 0.5, 5.0

# First bytes of the containers a user is likely to hand us: a file that starts like one of these
# but does not open is a damaged video, not "not a video".
_SIGNATURES = {
    "MP4/MOV": lambda head: head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"),
    "AVI": lambda head: head[:4] == b"RIFF" and head[8:12] == b"AVI ",
    "Matroska/WebM": lambda head: head[:4] == b"\x1a\x45\xdf\xa3",
    "MPEG-TS": lambda head: len(head) > 188 and head[0] == head[188] == 0x47,
    "Ogg": lambda head: head[:4] == b"OggS",
    "FLV": lambda head: head[:3] == b"FLV",
}


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: position in the source, from 0.
        timestamp: seconds since the first frame (from the container's timestamps when it has
            them, else ``index / fps``).
        image: (H, W, 3) uint8 RGB.
        dropped_before: frames lost between the previous frame handed out and this one (images
            or packets that did not decode, or a jump in the timestamps the demuxer skipped).
        damaged: the decoder flagged this frame as corrupt (it concealed an error in it).
        reconnected: the first frame after the stream was opened again (a new shot: what came
            before it is no guide to it).
    """

    index: int
    timestamp: float
    image: np.ndarray
    dropped_before: int = 0
    damaged: bool = False
    reconnected: bool = False

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


class VideoSource(AbstractContextManager, ABC):  # __enter__ returns self
    """A video input: metadata known at open time, frames decoded lazily by iteration.

    Iterating again starts from the beginning (a file is reopened; a live stream reconnects).
    Use as a context manager, or call :meth:`close`, to release the file or connection early.

    Attributes:
        source: the path or URL as given (credentials in URLs are hidden in messages).
        fps: frames per second, or None when the source declares none and none was given.
        width, height: size of the frames in pixels (of the first frame, for image folders).
        frame_count: number of frames that iteration will yield, or None when unknown (live
            streams). For containers without an index it is estimated from the duration.
        max_frames: iteration stops after this many frames handed out (None: read to the
            end); dropped frames do not count.
        strict: raise at the first frame that does not decode instead of skipping it.
        dropped, decode_errors, damaged, reconnects: what the running (or last) iteration met:
            frames lost, packets or images the decoder rejected (part of ``dropped``), frames
            kept although the decoder flagged them corrupt, and reconnections of a stream.
    """

    def __init__(self, source: str, max_frames: int | None, strict: bool = False) -> None:
        if max_frames is not None and max_frames < 1:
            raise SettingsError(f"max_frames must be >= 1, got {max_frames}")
        self.source = source
        self.max_frames = max_frames
        self.strict = strict
        self.dropped = self.decode_errors = self.damaged = self.reconnects = 0
        self.fps: float | None = None
        self.width = 0
        self.height = 0
        self._declared_count: int | None = None
        self._active: Generator[VideoFrame] | None = None
        self._to_rgb = VideoReformatter()

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """The frame as (H, W, 3) uint8 RGB, through this source's own converter.

        Why not PyAV's ``VideoFrame.to_ndarray(format=...)``: it makes a new swscale context
        for every frame, ~1.1 ms of the ~1.4 ms a 128x256 H.264 frame cost to decode and
        convert on this project's CPU; one converter kept per source makes it ~0.45 ms, the
        same pixels. A source is read by one thread, so its converter is never shared."""
        return self._to_rgb.reformat(frame, format="rgb24").to_ndarray()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as video sizes are written (640x480)."""
        return self.width, self.height

    @property
    def frame_count(self) -> int | None:
        if self._declared_count is None:
            return self.max_frames
        if self.max_frames is None:
            return self._declared_count
        return min(self._declared_count, self.max_frames)

    @property
    def is_live(self) -> bool:
        """True for network streams, which have no end and no frame count."""
        return False

    def __iter__(self) -> Iterator[VideoFrame]:
        self._close_active()
        self.dropped = self.decode_errors = self.damaged = self.reconnects = 0
        self._active = self._frames()
        return self._active

    def close(self) -> None:
        """Release the file or connection (a running iteration ends)."""
        self._close_active()

    def __exit__(self, *exc_info: object) -> None:
        self.close()  # whatever ended the block

    def __repr__(self) -> str:
        fps = "?" if self.fps is None else f"{self.fps:g}"
        count = "?" if self.frame_count is None else self.frame_count
        return (
            f"{type(self).__name__}({display_source(self.source)!r}, "
            f"{self.width}x{self.height}, {fps} fps, {count} frames)"
        )

    @abstractmethod
    def _frames(self) -> Generator[VideoFrame]: ...

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None


@dataclass
class _Position:
    """Where an iteration of a container stands; it spans the connections of a live stream, so
    indices and timestamps go on across reconnections."""

    index: int = 0  # the next frame's place in the source (frames handed out + dropped)
    handed_out: int = 0
    pending_drops: int = 0  # packets rejected since the last frame handed out
    last_timestamp: float | None = None
    reconnected: bool = False
    # this connection's clock: its first frame time, the previous frame time, the smallest step
    first_time: float | None = None
    previous_time: float | None = None
    step: float | None = None
    offset: float = 0.0

    def new_connection(self, fps: float | None) -> None:
        """A new connection starts its own clock: continue the timeline one frame later."""
        self.reconnected = True
        self.first_time = self.previous_time = self.step = None
        if self.last_timestamp is not None:
            self.offset = self.last_timestamp + 1 / (fps or 1.0)

    def place(self, time: float | None, fps: float | None) -> tuple[float, int]:
        """The timestamp of a frame with the container time ``time`` (None: none), and how many
        frames its timestamp says are missing before it (a jump of more than one frame step;
        the step is the smallest seen on this connection, else 1 / fps)."""
        if time is None:
            step = 1 / (fps or 1.0)
            later = 0.0 if self.last_timestamp is None else self.last_timestamp + step
            return later + self.pending_drops * step, 0
        if self.first_time is None:
            self.first_time = time
        missing = 0
        if self.previous_time is not None:
            gap = time - self.previous_time
            step = self.step or (1 / fps if fps else None)
            if step and gap > 1.5 * step:
                missing = round(gap / step) - 1
            if gap > 0:
                self.step = gap if self.step is None else min(self.step, gap)
        self.previous_time = time
        return self.offset + time - self.first_time, missing


@dataclass
class _PacketSpan:
    """How much of a file the demuxer delivered: packets holding data, and the presentation
    times they span (seconds)."""

    packets: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, packet: av.Packet) -> None:
        if not packet.size:  # the empty packets that flush the decoder at the end
            return
        self.packets += 1
        if packet.pts is not None and packet.time_base is not None:
            time = float(packet.pts * packet.time_base)
            self.first = time if self.first is None else min(self.first, time)
            self.last = time if self.last is None else max(self.last, time)

    def seconds(self, fps: float) -> float:
        """The duration the packets cover, their last frame included."""
        if self.first is None or self.last is None:
            return self.packets / fps
        return self.last - self.first + 1 / fps


class ContainerSource(VideoSource):
    """A video file or network stream opened with FFmpeg (any container and codec it handles).

    A live stream (rtsp://, tcp://, ... see LIVE_SCHEMES) that ends or breaks off is opened again
    when ``reconnect`` > 0: attempts start after 0.5 s, the wait doubling up to 5 s, for up to
    ``reconnect`` seconds after the break; each attempt may take ``timeout`` itself.

    Memory of a live MPEG-TS stream (tcp://, udp://, srt://): FFmpeg's MPEG-TS demuxer reserves
    a seek-back buffer of ``probesize`` bytes (FFmpeg's default: 5 MB) on an input it cannot
    seek, and the reads fill it front to back, so the process's resident memory climbs at the
    stream's byte rate until that many bytes have arrived, and then drops when FFmpeg shrinks
    the buffer back to 32 KB. At 100 kbit/s that climb lasts about 7 minutes and looks like a
    leak; it is not one (bounded at about ``probesize`` per open connection; glibc's
    ``malloc_trim`` cannot return it, the buffer is in use; see benchmarks/pyav_live_rss.py).
    ``options={"probesize": "1000000"}`` bounds it lower, but also limits how far FFmpeg reads
    to find the codec parameters at open: a high-bitrate stream with long keyframe intervals
    may then open without its frame size. So the default is left as FFmpeg's.
    """

    def __init__(
        self,
        source: str,
        *,
        max_frames: int | None = None,
        fps: float | None = None,
        timeout: float | None = None,
        options: Mapping[str, str] | None = None,
        strict: bool = False,
        reconnect: float = 0.0,
        hwaccel: HardwareDecoding | None = None,
    ) -> None:
        super().__init__(source, max_frames, strict)
        self._live = _is_url(source) and urlsplit(source).scheme.lower() in LIVE_SCHEMES
        self._hwaccel = hwaccel
        self._timeout = timeout
        self._reconnect = reconnect if self._live else 0.0
        self._options = _default_options(source) | dict(options or {})
        self._container = self._open()  # open now: errors surface before any work
        stream = self._container.streams.video[0]
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else fps
        self._declared_count = None if self._live else _declared_frames(self._container, self.fps)

    @property
    def is_live(self) -> bool:
        return self._live

    def close(self) -> None:
        super().close()
        if self._container is not None:
            self._container.close()
            self._container = None

    def _open(self) -> av.container.InputContainer:
        # the device was checked by open_video: a missing one is its own error, not the file's
        hwaccel = None if self._hwaccel is None else self._hwaccel.hwaccel()
        try:
            container = av.open(
                self.source, options=self._options, timeout=self._timeout, hwaccel=hwaccel
            )
        except av.FFmpegError as error:
            raise self._open_error(error) from error
        kind = None if container.streams else _sniff_container(self.source)
        if kind is not None:  # a container cut inside its header: no stream is left at all
            container.close()
            raise CorruptVideoError(
                f"{display_source(self.source)} looks like {kind} but its header is cut short: the "
                "file is truncated or damaged; re-copy or re-export it (0 frames read)",
                source=self.source,
                frames_read=0,
            )
        if not container.streams.video or container.format.name == "tty":
            # FFmpeg's "tty" demuxer renders text files as ANSI art: not a video for our purposes
            container.close()
            raise NotAVideoError(
                f"{display_source(self.source)} has no video stream (audio only, or not a video); "
                "give a video file, a folder of images or a stream URL"
            )
        return container

    def _open_error(self, error: av.FFmpegError) -> Exception:
        name = display_source(self.source)
        if _is_url(self.source):
            return StreamOpenError(
                f"cannot open stream {name}: {error.strerror}; check the URL, that the server is "
                "up and reachable, and raise --timeout for slow networks"
            )
        if isinstance(error, PermissionError):
            return InputNotReadableError(f"cannot read {name}: permission denied")
        kind = _sniff_container(self.source)
        if kind is not None:
            return CorruptVideoError(
                f"{name} looks like {kind} but cannot be opened ({error.strerror}): the file is "
                "truncated or damaged; re-copy or re-export it (0 frames read)",
                source=self.source,
                frames_read=0,
            )
        return NotAVideoError(
            f"{name} is not a video FFmpeg can read ({error.strerror}); give a video file, "
            "a folder of images or a stream URL"
        )

    def _frames(self) -> Generator[VideoFrame]:
        container, self._container = self._container or self._open(), None
        position = _Position()
        while True:
            failure = yield from self._connection(container, position)
            if self._reconnect <= 0 or self._done(position):
                break
            container = self._reopen()
            if container is None:  # it did not come back: ended (or broke off) after all
                break
            self.reconnects += 1
            position.new_connection(self.fps)
        if failure is not None:
            raise failure
        if position.handed_out == 0 and self.dropped:
            raise CorruptVideoError(
                f"{display_source(self.source)}: no frame could be decoded ({self.decode_errors} "
                "packets rejected by the decoder); the input is damaged throughout",
                source=self.source,
                frames_read=0,
            )

    def _done(self, position: _Position) -> bool:
        return self.max_frames is not None and position.handed_out >= self.max_frames

    def _connection(
        self, container: av.container.InputContainer, position: _Position
    ) -> Generator[VideoFrame, None, CorruptVideoError | None]:
        """The frames of one open container, until its end, ``max_frames``, or a failure,
        which is returned (raised only for a rejected packet under ``strict``)."""
        with container:  # this generator owns the container now; closing it closes the file
            stream = container.streams.video[0]
            if not self._live:  # frame threads add latency, which only matters live
                stream.codec_context.thread_type = "AUTO"
            packets, span = container.demux(stream), _PacketSpan()
            while not self._done(position):
                try:
                    packet = next(packets, None)
                except av.FFmpegError as error:
                    return self._failure(position.handed_out, self._reason(error))
                if packet is None:
                    return self._check_complete(container, span, position.handed_out)
                span.add(packet)
                try:
                    frames = packet.decode()
                except av.FFmpegError as error:
                    if self.strict:
                        raise self._failure(position.handed_out, self._reason(error)) from error
                    self.decode_errors += 1
                    self.dropped += 1
                    position.pending_drops += 1
                    continue
                for frame in frames:
                    if self._done(position):
                        break
                    yield self._hand_out(frame, position)
        return None

    def _hand_out(self, frame: av.VideoFrame, position: _Position) -> VideoFrame:
        timestamp, missing = position.place(frame.time, self.fps)
        dropped = max(position.pending_drops, missing)  # a rejected packet leaves a gap too
        damaged = frame.is_corrupt
        self.dropped += dropped - position.pending_drops  # those were counted as rejected
        self.damaged += damaged
        position.index += dropped
        handed = VideoFrame(
            position.index,
            float(timestamp),
            self._rgb(frame),
            dropped_before=dropped,
            damaged=damaged,
            reconnected=position.reconnected,
        )
        position.index += 1
        position.handed_out += 1
        position.pending_drops, position.reconnected = 0, False
        position.last_timestamp = handed.timestamp
        return handed

    def _reopen(self) -> av.container.InputContainer | None:
        """The stream opened again, or None if it did not come back within ``reconnect`` s."""
        deadline = time.monotonic() + self._reconnect
        wait = RECONNECT_FIRST_WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(wait, remaining))
            try:
                return self._open()
            except VideoError:
                wait = min(2 * wait, RECONNECT_MAX_WAIT)
        return None

    def _check_complete(
        self, container: av.container.InputContainer, span: _PacketSpan, frames_read: int
    ) -> CorruptVideoError | None:
        """A file that ends quietly short of what its header declares was truncated. Counted in
        packets, not frames: a packet that is there but does not decode is damage, not loss."""
        if self._live:
            return None
        stream = container.streams.video[0]
        if stream.frames > 0:
            if span.packets < stream.frames - 2:  # a frame or two of slack: edit lists, delays
                return self._failure(
                    frames_read,
                    f"the file ends early (its header declares {stream.frames} frames)",
                )
            return None
        # No index (Matroska, WebM, TS): compare with the duration when only video is in the file
        if container.duration and len(container.streams) == 1 and self.fps:
            declared = container.duration / av.time_base
            reached = span.seconds(self.fps)
            if reached < declared - max(0.5, 3 / self.fps):
                return self._failure(
                    frames_read,
                    f"the file ends at {reached:.2f} s but its header declares {declared:.2f} s",
                )
        return None

    def _reason(self, error: av.FFmpegError) -> str | None:
        """FFmpeg's words for a failure, except that an interrupted network read is a timeout
        (FFmpeg only says "Immediate exit requested")."""
        if isinstance(error, av.ExitError) and _is_url(self.source) and self._timeout is not None:
            return f"nothing arrived for {self._timeout:g} s, the read timeout"
        return error.strerror

    def _failure(self, frames_read: int, reason: str | None) -> CorruptVideoError:
        name = display_source(self.source)
        what = "stream broke off" if _is_url(self.source) else "video is truncated or damaged"
        usable = "the frames before the failure are usable" if frames_read else "no frame came"
        return CorruptVideoError(
            f"{name}: {what} after {frames_read} good frames ({reason or 'decode error'}); "
            + usable,
            source=self.source,
            frames_read=frames_read,
        )


class ImageFolderSource(VideoSource):
    """A folder of images (png, jpg, ...) read in natural name order as the frames of a video.

    Names are sorted with numbers compared as numbers (``frame2.png`` before ``frame10.png``);
    hidden files are skipped. Timestamps are ``index / fps``.
    """

    def __init__(
        self,
        folder: str,
        *,
        max_frames: int | None = None,
        fps: float | None = None,
        strict: bool = False,
    ):
        super().__init__(folder, max_frames, strict)
        self.paths = _list_images(Path(folder))
        self.fps = fps or DEFAULT_FOLDER_FPS
        self._declared_count = len(self.paths)
        first = self._first_image()  # a folder with no good image fails now, not later
        self.height, self.width = first.shape[:2]

    def _first_image(self) -> np.ndarray:
        """The first image that decodes (under ``strict``, the first image)."""
        for path in self.paths:
            try:
                return self._read(path, 0)
            except CorruptVideoError as error:
                if self.strict:
                    raise
                last_error = error
        raise CorruptVideoError(
            f"image folder {self.source}: none of its {len(self.paths)} images can be decoded "
            f"(the last: {last_error.reason}); replace them",
            source=self.source,
            frames_read=0,
        ) from last_error

    def _frames(self) -> Generator[VideoFrame]:
        handed_out, dropped = 0, 0
        for index, path in enumerate(self.paths):
            if self.max_frames is not None and handed_out >= self.max_frames:
                return
            try:
                image = self._read(path, handed_out)
            except CorruptVideoError:
                if self.strict:
                    raise
                self.dropped, self.decode_errors = self.dropped + 1, self.decode_errors + 1
                dropped += 1
                continue
            yield VideoFrame(index, index / self.fps, image, dropped_before=dropped)
            handed_out, dropped = handed_out + 1, 0

    def _read(self, path: Path, frames_read: int) -> np.ndarray:
        try:
            with av.open(str(path)) as container:
                frame = next(container.decode(video=0))
                return self._rgb(frame)
        except (av.FFmpegError, StopIteration) as error:
            reason = getattr(error, "strerror", None) or "no image data"
            raise CorruptVideoError(
                f"image folder {self.source}: cannot decode {path.name} ({reason}) after "
                f"{frames_read} good frames; replace or remove that file",
                source=self.source,
                frames_read=frames_read,
                reason=f"{path.name}: {reason}",
            ) from error


def open_video(
    source: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    fps: float | None = None,
    timeout: float | None = 10.0,
    options: Mapping[str, str] | None = None,
    strict: bool = False,
    reconnect: float = 0.0,
    hwaccel: HardwareDecoding | str | None = None,
) -> VideoSource:
    """Open a video file, a folder of images or a network stream for lazy reading.

    Args:
        source: a path to a video file (any container/codec FFmpeg reads) or a single image, a
            path to a folder of images, or a URL FFmpeg opens (rtsp://, http(s)://, rtmp://, ...).
        max_frames: stop after this many frames (None: to the end).
        fps: frame rate for image folders (default 25) and for sources that declare none.
        timeout: seconds to wait for a network stream to open or deliver data (None: forever).
        options: extra FFmpeg demuxer options, e.g. ``{"rtsp_transport": "udp"}`` (rtsp uses
            TCP by default here, which survives lossy networks and NAT).
        strict: raise at the first image or packet that does not decode (default: skip it,
            count it in ``dropped`` and go on).
        reconnect: for live stream URLs, seconds to keep trying to open the stream again after
            it ends or breaks off (0: the end of the connection is the end of the stream).
        hwaccel: decode video files and streams on NVIDIA's decoder (NVDEC): ``"cuda"`` or
            ``"cuda:1"`` (see :mod:`streamdeq.data.hardware`); checked even for an image
            folder, whose images are decoded on the CPU. None: on the CPU.

    Raises:
        InputNotFoundError, InputNotReadableError, NotAVideoError, NoImagesError,
        StreamOpenError, CorruptVideoError (a file that starts like a video but cannot be opened),
        HardwareDecodingError (``hwaccel`` not cuda or cuda:N, or its device does not decode).
        Iteration raises CorruptVideoError where the input cannot go on (truncated, broken off,
        nothing decodable; under ``strict``, the first frame that does not decode).
    """
    if isinstance(hwaccel, str):
        hwaccel = HardwareDecoding.parse(hwaccel)
    if hwaccel is not None:  # asked for, it must work, whatever this source turns out to be
        hwaccel.check()
    text = os.fspath(source)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if _is_url(text):
        return ContainerSource(
            text,
            max_frames=max_frames,
            fps=fps,
            timeout=timeout,
            options=options,
            strict=strict,
            reconnect=reconnect,
            hwaccel=hwaccel,
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}; check the path")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InputNotReadableError(f"cannot read {path}: permission denied")
    if path.is_dir():
        return ImageFolderSource(str(path), max_frames=max_frames, fps=fps, strict=strict)
    return ContainerSource(
        str(path), max_frames=max_frames, fps=fps, options=options, strict=strict, hwaccel=hwaccel
    )


def _list_images(folder: Path) -> list[Path]:
    paths = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".")
    ]
    if not paths:
        raise NoImagesError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}; "
            "give a folder of frames or a video file"
        )
    return sorted(paths, key=_natural_key)


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _declared_frames(container: av.container.InputContainer, fps: float | None) -> int | None:
    stream = container.streams.video[0]
    if stream.frames > 0:
        return stream.frames
    if stream.duration and stream.time_base and fps:
        return round(float(stream.duration * stream.time_base) * fps)
    if container.duration and fps:
        return round(container.duration / av.time_base * fps)
    return None


def _default_options(source: str) -> dict[str, str]:
    if _is_url(source) and urlsplit(source).scheme.lower() in ("rtsp", "rtsps"):
        return {"rtsp_transport": "tcp"}
    return {}


def _sniff_container(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            head = file.read(189)
    except OSError:
        return None
    return next((kind for kind, matches in _SIGNATURES.items() if matches(head)), None)


def _is_url(source: str) -> bool:
    scheme = urlsplit(source).scheme
    return len(scheme) > 1 and "://" in source and scheme.lower() != "file"  # C:\ is a drive


def display_source(source: str, *, keep_user: bool = True) -> str:
    """The source for messages, with any password in a URL hidden (``user:***@host``), or with
    the whole user part dropped (``keep_user=False``: what a web page may show)."""
    if not _is_url(source):
        return source
    parts = urlsplit(source)
    if parts.password is None and (keep_user or parts.username is None):
        return source
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    if keep_user:
        host = f"{parts.username}:***@{host}"
    return urlunsplit(parts._replace(netloc=host))
