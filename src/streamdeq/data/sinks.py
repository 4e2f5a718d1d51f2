"""Outputs that survive any end of a run: an H.264 video, per-frame stats (CSV, JSON lines, JSON).

During a run every sink writes to a visible file beside its target whose name says what it is,
``out.incomplete.mp4`` for ``out.mp4`` (the real suffix stays last, so players open it), and
renames it to the target in :meth:`finish`. Nothing depends on that last step: what was written
is usable even if the process is killed (kill -9, out of memory) or the power fails.

* The video is a fragmented MP4/MOV (an index per fragment, none at the end) or Matroska. A new
  fragment starts at a keyframe, and the writer forces one every ``flush_seconds`` (2 s) of wall
  time, then writes the finished fragment and fsyncs it. After an abrupt end the incomplete file
  plays up to the last fragment written: it lacks at most the frames of the last
  ``flush_seconds`` of wall time plus the encoder's delay (11 frames with libx264 ``veryfast``
  on 2 cores: its lookahead and frame threads; more with more threads). A kill in the middle
  of writing a fragment leaves that one fragment torn; readers decode the ones before it.
* CSV and JSON lines (``.jsonl``) stats are flushed row by row (fsynced every ``flush_seconds``):
  after an abrupt end the incomplete file has one valid row per frame written. A ``.json``
  array can only be closed at the end: its incomplete file is an unterminated array, which JSON
  parsers reject; use ``.csv`` or ``.jsonl`` when a run may be killed.

A new sink for a target whose incomplete file is still there (left by a run that ended
abruptly) replaces it and says so in :attr:`replaced_incomplete`. The path is checked when the
sink is created, before any work is done.

Used as a context manager, a sink finishes when the block ends normally, and also when it ends by
Ctrl-C (KeyboardInterrupt) or by a :class:`CorruptVideoError` from the input: in both the frames
written so far are good, so the file keeps them. Any other exception aborts (the incomplete file
is removed and nothing appears under the target name). Say so to the user outside the block::

    video = open_video(src)  # input errors surface here, before any output exists
    writer = VideoWriter("out.mp4", video.fps, video.size)
    try:
        with video, writer:
            for frame in video:
                writer.write(render(frame))
    except (KeyboardInterrupt, CorruptVideoError) as stop:
        print(f"stopped early ({stop}); {writer.path} has the {writer.frames_written} frames done")

``finish()`` and ``abort()`` can also be called directly, e.g. to keep the output on other errors.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from fractions import Fraction
from pathlib import Path
from time import monotonic
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from ..errors import SettingsError
from .errors import CorruptVideoError, OutputError, StatsSchemaError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
STATS_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
H264_ENCODERS = ("libx264", "libopenh264", "h264")  # the first one this FFmpeg build has
KEEP_OUTPUT_ON = (KeyboardInterrupt, CorruptVideoError)
"""Exceptions after which a sink's context manager still finishes: the input stopped early."""
FLUSH_SECONDS = 2.0
"""Wall time between two fsyncs of an output: at most what an abrupt end loses (plus, for the
video, the encoder's delay)."""
# A fragment per keyframe, the (empty) index first; each fragment's offsets relative to itself.
FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def incomplete_path(path: Path) -> Path:
    """Where a sink writes ``path`` during a run: ``out.incomplete.mp4`` for ``out.mp4``."""
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


class IncompleteFileSink(AbstractContextManager, ABC):  # __enter__ returns self
    """Writes ``<stem>.incomplete<suffix>`` beside ``path`` and renames it to ``path`` on finish.

    Attributes:
        path: the target.
        incomplete_path: the file written during the run.
        replaced_incomplete: whether ``incomplete_path`` was already there when the sink was
            created (a run that ended abruptly left it) and has been replaced.
    """

    def __init__(self, path: str | os.PathLike[str], what: str, suffixes: Collection[str]) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise OutputError(f"cannot write {what} to {path}: it is a folder; give a file name")
        if self.path.suffix.lower() not in suffixes:
            raise OutputError(f"cannot write {what} to {path}: use {', '.join(suffixes)}")
        self.incomplete_path = incomplete_path(self.path)
        self.replaced_incomplete = self.incomplete_path.is_file()
        self._what = what
        self._closed = False
        self._result: Path | None = None
        _check_writable(self.path, self.incomplete_path, what)

    @property
    def closed(self) -> bool:
        return self._closed

    def finish(self) -> Path | None:
        """Flush, close and rename into place what was written so far; idempotent.

        Returns the final path, or None when nothing was written and no file was made (see the
        subclass). Works the same after a run stopped early: the file holds what was written.

        Raises:
            OutputError: the file could not be finished (e.g. the disk is full); the incomplete
                file is kept, as after an abrupt end, since it holds what was flushed.
        """
        if self._closed:
            return self._result
        self._closed = True
        try:
            keep = self._close_incomplete()
            if keep:
                os.replace(self.incomplete_path, self.path)
        except (OSError, av.FFmpegError) as error:
            self._close_incomplete_quietly()
            raise OutputError(
                f"could not finish {self._what} {self.path} ({error}); "
                f"{self.incomplete_path} keeps what was written before"
            ) from error
        if not keep:
            self._discard()
            return None
        fsync_folder(self.path.parent)  # the rename, too, survives a power cut
        self._result = self.path
        return self.path

    def abort(self) -> None:
        """Close and delete the incomplete file; the target is left untouched. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_incomplete_quietly()
        finally:
            self._discard()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None or issubclass(exc_type, KEEP_OUTPUT_ON):
            self.finish()
        else:
            self.abort()

    def _require_open(self) -> None:
        if self._closed:
            raise OutputError(f"{self._what} {self.path} is already finished or aborted")

    def _discard(self) -> None:
        self.incomplete_path.unlink(missing_ok=True)

    @abstractmethod
    def _close_incomplete(self) -> bool:
        """Flush, fsync and close the incomplete file; return whether it becomes the target."""

    @abstractmethod
    def _close_incomplete_quietly(self) -> None:
        """Close the incomplete file without raising (it is about to be deleted)."""


class VideoWriter(IncompleteFileSink):
    """An H.264 (yuv420p) video written frame by frame; playable in browsers and players.

    Odd widths or heights are padded to even by repeating the last row or column (H.264 in
    yuv420p needs even sizes). A frame whose size differs from the writer's is cropped or padded
    with black at the bottom and right to fit.

    MP4 and MOV are written fragmented; Matroska is readable before it is closed anyway, and is
    written with a cluster per keyframe (FFmpeg's WebM DASH mode), as an MP4 has a fragment.
    A keyframe is forced when ``flush_seconds`` of wall time have passed since the last one; when
    its packet leaves the encoder, the fragment before it is on disk (fsynced) and
    ``frames_durable`` counts its frames. The encoder's own keyframes (libx264: at most every
    250 frames, or at a scene cut) start fragments too.

    Args:
        path: the output file, ``.mp4`` (or ``.m4v``, ``.mov``, ``.mkv``).
        fps: frames per second, > 0.
        size: (width, height) of the frames; None takes it from the first frame written.
        crf: x264 constant rate factor: 0 lossless (in yuv420p), 18 visually lossless, 23 x264's
            default. Lower is larger.
        preset: x264 speed/size trade-off ("ultrafast" ... "veryslow").
        flush_seconds: wall time between forced keyframes, i.e. between fsyncs of the file: at
            most what an abrupt end loses, besides the frames inside the encoder. Shorter costs
            size (a keyframe is several times a predicted frame).

    Attributes:
        frames_written: frames given to :meth:`write`.
        frames_durable: the first frames that are on disk in whole fragments (fsynced): what
            the incomplete file holds after an abrupt end, at least.

    Raises:
        OutputError: at creation, for a path that cannot be written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int] | None = None,
        *,
        crf: int = 20,
        preset: str = "veryfast",
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise SettingsError(f"fps must be a positive number, got {fps!r}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SettingsError(f"size must be (width, height) >= 1, got {size!r}")
        _check_flush_seconds(flush_seconds)
        super().__init__(path, "video", VIDEO_SUFFIXES)
        self.fps = float(fps)
        self.size = size
        self.flush_seconds = float(flush_seconds)
        self.frames_written = 0
        self.frames_durable = 0
        self._rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        self._codec_options = {"crf": str(crf), "preset": preset}
        self._stream: av.VideoStream | None = None
        self._keyframe_forced_at = -math.inf
        options = {"flush_packets": "1"}  # every packet (and so fragment) leaves FFmpeg's buffer
        if self.path.suffix.lower() == ".mkv":
            options["dash"] = "1"  # a cluster per keyframe, not per 5 s of video or 5 MB
        else:
            options["movflags"] = FRAGMENTED_MOVFLAGS
        try:  # our own file object, for its descriptor to fsync; the format follows its name
            self._file = open(self.incomplete_path, "wb", buffering=0)  # noqa: SIM115
            self._container = av.open(self._file, "w", options=options)
        except (OSError, av.FFmpegError, ValueError) as error:
            self._close_incomplete_quietly()
            self._discard()
            raise OutputError(f"cannot write video {self.path}: {error}") from error
        if size is not None:
            self._add_stream(size)

    def write(self, image: np.ndarray) -> None:
        """Append one frame: (H, W, 3) uint8 RGB (a VideoFrame's ``image``)."""
        self._require_open()
        image = np.asarray(getattr(image, "image", image))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB frame, got {image.shape} {image.dtype}"
            )
        if self._stream is None:
            self.size = (image.shape[1], image.shape[0])
            self._add_stream(self.size)
        frame = av.VideoFrame.from_ndarray(self._fit(image), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self._rate
        now = monotonic()
        if now - self._keyframe_forced_at >= self.flush_seconds:
            frame.pict_type = PictureType.I  # x264 makes it an IDR frame: a fragment starts
            self._keyframe_forced_at = now
        self._encode(frame)
        self.frames_written += 1

    def _add_stream(self, size: tuple[int, int]) -> None:
        stream = self._container.add_stream(
            _h264_encoder(), rate=self._rate, options=self._codec_options
        )
        stream.width, stream.height = _even(size[0]), _even(size[1])
        stream.pix_fmt = "yuv420p"
        self._stream = stream

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Crop or pad ``image`` to the stream's (even) size."""
        assert self.size is not None and self._stream is not None
        width, height = self.size
        if image.shape[:2] != (height, width):  # another size: crop, pad with black
            image = image[:height, :width]
            pad = ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0))
            image = np.pad(image, pad)
        extra = (self._stream.height - height, self._stream.width - width)
        if any(extra):  # odd size: repeat the last row/column, which no one will see
            image = np.pad(image, ((0, extra[0]), (0, extra[1]), (0, 0)), mode="edge")
        return image

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode ``frame`` (None: flush the encoder) and write the packets that come out; at a
        keyframe the muxer has just written the fragment before it: fsync that."""
        try:
            packets = self._stream.encode(frame)
            # read before muxing, which rescales pts to the container's time base
            keyframes = [packet.pts for packet in packets if packet.is_keyframe and packet.pts]
            self._container.mux(packets)
            if keyframes:
                os.fsync(self._file.fileno())
                self.frames_durable = max(keyframes)  # pts counts frames from 0
        except (OSError, av.FFmpegError) as error:
            raise OutputError(
                f"writing video {self.path} failed after {self.frames_written} frames: {error}"
            ) from error

    def _close_incomplete(self) -> bool:
        if self._stream is None or self.frames_written == 0:
            self._close_incomplete_quietly()
            return False  # an mp4 without frames plays nowhere: make no file
        self._encode(None)
        self._container.close()
        os.fsync(self._file.fileno())
        self._file.close()
        self.frames_durable = self.frames_written
        return True

    def _close_incomplete_quietly(self) -> None:
        for closable in (getattr(self, "_container", None), getattr(self, "_file", None)):
            with contextlib.suppress(OSError, av.FFmpegError):
                if closable is not None:
                    closable.close()


class StatsWriter(IncompleteFileSink):
    """One row per frame, written and flushed as it comes; the format follows the extension.

    ``.csv`` (a header line, then rows), ``.jsonl`` / ``.ndjson`` (one JSON object per line) or
    ``.json`` (one JSON array of objects, closed on finish: until then, and for good after an
    abrupt end, the incomplete file is an unterminated array). Each row reaches the operating
    system as it is written (it survives a killed process) and the disk within ``flush_seconds``
    (it survives a power cut).

    The columns are ``columns`` if given, else the keys of the first row, in order. Every row is
    written with exactly these columns: a missing key or a None value is left empty (CSV) or
    null (JSON), the one convention for "no value" (so rows say None, never ""); a key
    that is not a column raises :class:`StatsSchemaError`, because a CSV header cannot grow after
    it is written. Pass ``columns`` when some keys appear only on some frames.

    Values may be Python or numpy scalars, 0-d arrays or 1-element tensors; NaN and infinities
    become null in JSON (which has no such numbers) and ``nan``/``inf`` in CSV. Lists and dicts
    are written as JSON (inside one CSV cell).

    Unlike :class:`VideoWriter`, ``finish()`` with no rows still makes a (header-only) file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Iterable[str] | None = None,
        *,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        _check_flush_seconds(flush_seconds)
        super().__init__(path, "stats", STATS_FORMATS)
        self.format = STATS_FORMATS[self.path.suffix.lower()]
        self.columns: list[str] | None = None if columns is None else list(columns)
        self.rows_written = 0
        self.flush_seconds = float(flush_seconds)
        self._synced_at = monotonic()
        try:
            self._file = open(self.incomplete_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise OutputError(f"cannot write stats {self.path}: {error.strerror}") from error
        self._csv = csv.writer(self._file) if self.format == "csv" else None
        if self.format == "json":
            self._file.write("[")
        if self.columns is not None:
            self._start(self.columns)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (a mapping of column name to value) and flush it to the OS (and to
        the disk when ``flush_seconds`` have passed since the last time)."""
        self._require_open()
        if self.columns is None:
            self.columns = [str(key) for key in row]
            self._start(self.columns)
        extra = [key for key in row if key not in self.columns]
        if extra:
            raise StatsSchemaError(
                f"stats row {self.rows_written} of {self.path} has keys {extra} that are not "
                f"columns {self.columns}; pass every column to StatsWriter(columns=...)"
            )
        values = [_plain(row.get(column)) for column in self.columns]
        try:
            self._write_row(values)
            self._file.flush()
            if monotonic() - self._synced_at >= self.flush_seconds:
                os.fsync(self._file.fileno())
                self._synced_at = monotonic()
        except OSError as error:
            raise OutputError(f"writing stats {self.path} failed: {error.strerror}") from error
        self.rows_written += 1

    def _start(self, columns: list[str]) -> None:
        if self._csv is not None:
            self._csv.writerow(columns)

    def _write_row(self, values: list[Any]) -> None:
        if self._csv is not None:
            self._csv.writerow([_csv_cell(value) for value in values])
            return
        record = {
            column: json_safe(value) for column, value in zip(self.columns, values, strict=True)
        }
        text = json.dumps(record, allow_nan=False)
        if self.format == "jsonl":
            self._file.write(text + "\n")
        else:
            self._file.write(("\n" if self.rows_written == 0 else ",\n") + text)

    def _close_incomplete(self) -> bool:
        if self.format == "json":
            self._file.write("\n]\n" if self.rows_written else "]\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return True

    def _close_incomplete_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


def _check_writable(path: Path, incomplete: Path, what: str) -> None:
    """Fail now, with a reason a user can fix, if ``path`` could not be written later."""
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"cannot write {what} to {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} to {path}: {parent} is not a folder")
    try:  # the only reliable test (permissions, read-only mounts, ACLs) is to try
        with open(incomplete, "wb"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write {what} to {path}: {error.strerror}") from error
    if path.exists() and not os.access(path, os.W_OK):
        incomplete.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} to {path}: the existing file is read-only")


def _check_flush_seconds(flush_seconds: float) -> None:
    if not (isinstance(flush_seconds, int | float) and flush_seconds > 0):
        raise SettingsError(f"flush_seconds must be a positive number, got {flush_seconds!r}")


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; best effort (not every system can open a folder)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _h264_encoder() -> str:
    for name in H264_ENCODERS:
        try:
            av.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    raise OutputError("this FFmpeg build has no H.264 encoder; install PyAV from its wheels")


def _even(n: int) -> int:
    return n + n % 2


def _plain(value: Any) -> Any:
    """numpy and torch scalars, arrays and tensors as Python numbers and lists."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return value.tolist()
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity (in nested lists, tuples and mappings too) as None:
    strict JSON has no such numbers, and null is how the project writes "no value"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    return value


def _csv_cell(value: Any) -> Any:
    # NaN is how the stream says "not measured" (shot score, label change): an empty cell, as
    # None, so CSV has one convention for a missing value, like JSON's null
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(json_safe(value))
    return value
