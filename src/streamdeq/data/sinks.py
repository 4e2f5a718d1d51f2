"""Outputs that are never half-written: an H.264 video and per-frame stats (CSV, JSON lines, JSON).

Every sink writes to a hidden partial file beside its target (``.out.partial.mp4`` for
``out.mp4``) and renames it into place only in :meth:`finish`, so a file under the target name is
always complete. The path is checked when the sink is created, before any work is done.

Used as a context manager, a sink finishes when the block ends normally, and also when it ends by
Ctrl-C (KeyboardInterrupt) or by a :class:`CorruptVideoError` from the input: in both the frames
written so far are good, so the file keeps them. Any other exception aborts (the partial file is
removed and nothing appears under the target name). Say so to the user outside the block::

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
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av
import numpy as np

from ..errors import SettingsError
from .errors import CorruptVideoError, OutputError, StatsSchemaError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
STATS_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
H264_ENCODERS = ("libx264", "libopenh264", "h264")  # the first one this FFmpeg build has
KEEP_OUTPUT_ON = (KeyboardInterrupt, CorruptVideoError)
"""Exceptions after which a sink's context manager still finishes: the input stopped early."""


class _PartialFileSink(ABC):
    """Writes ``.<stem>.partial<suffix>`` beside ``path`` and renames it to ``path`` on finish."""

    def __init__(self, path: str | os.PathLike[str], what: str, suffixes: Collection[str]) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise OutputError(f"cannot write {what} to {path}: it is a folder; give a file name")
        if self.path.suffix.lower() not in suffixes:
            raise OutputError(f"cannot write {what} to {path}: use {', '.join(suffixes)}")
        self.partial_path = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._what = what
        self._closed = False
        self._result: Path | None = None
        _check_writable(self.path, self.partial_path, what)

    @property
    def closed(self) -> bool:
        return self._closed

    def finish(self) -> Path | None:
        """Flush, close and rename into place what was written so far; idempotent.

        Returns the final path, or None when nothing was written and no file was made (see the
        subclass). Works the same after a run stopped early: the file holds what was written.
        """
        if self._closed:
            return self._result
        self._closed = True
        try:
            keep = self._close_partial()
        except (OSError, av.FFmpegError) as error:
            self._discard()
            raise OutputError(f"could not finish {self._what} {self.path}: {error}") from error
        if not keep:
            self._discard()
            return None
        os.replace(self.partial_path, self.path)
        self._result = self.path
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file; the target path is left untouched. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_partial_quietly()
        finally:
            self._discard()

    def __enter__(self) -> Self:
        return self

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
        self.partial_path.unlink(missing_ok=True)

    @abstractmethod
    def _close_partial(self) -> bool:
        """Flush and close the partial file; return whether it should become the target."""

    @abstractmethod
    def _close_partial_quietly(self) -> None:
        """Close the partial file without raising (it is about to be deleted)."""


class VideoWriter(_PartialFileSink):
    """An H.264 (yuv420p) video written frame by frame; playable in browsers and players.

    Odd widths or heights are padded to even by repeating the last row or column (H.264 in
    yuv420p needs even sizes). A frame whose size differs from the writer's is cropped or padded
    with black at the bottom and right to fit.

    Args:
        path: the output file, ``.mp4`` (or ``.m4v``, ``.mov``, ``.mkv``).
        fps: frames per second, > 0.
        size: (width, height) of the frames; None takes it from the first frame written.
        crf: x264 constant rate factor: 0 lossless (in yuv420p), 18 visually lossless, 23 x264's
            default. Lower is larger.
        preset: x264 speed/size trade-off ("ultrafast" ... "veryslow").

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
    ) -> None:
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise SettingsError(f"fps must be a positive number, got {fps!r}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SettingsError(f"size must be (width, height) >= 1, got {size!r}")
        super().__init__(path, "video", VIDEO_SUFFIXES)
        self.fps = float(fps)
        self.size = size
        self.frames_written = 0
        self._rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        self._codec_options = {"crf": str(crf), "preset": preset}
        self._stream: av.VideoStream | None = None
        is_mkv = self.path.suffix.lower() == ".mkv"
        movflags = {} if is_mkv else {"movflags": "+faststart"}  # playable while loading
        try:
            self._container = av.open(str(self.partial_path), "w", options=movflags)
        except (OSError, av.FFmpegError, ValueError) as error:
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
        """Encode ``frame`` (None: flush the encoder) and write the packets that come out."""
        try:
            self._container.mux(self._stream.encode(frame))
        except (OSError, av.FFmpegError) as error:
            raise OutputError(
                f"writing video {self.path} failed after {self.frames_written} frames: {error}"
            ) from error

    def _close_partial(self) -> bool:
        if self._stream is None or self.frames_written == 0:
            self._close_partial_quietly()
            return False  # an mp4 without frames plays nowhere: make no file
        self._encode(None)
        self._container.close()
        return True

    def _close_partial_quietly(self) -> None:
        with contextlib.suppress(OSError, av.FFmpegError):
            self._container.close()


class StatsWriter(_PartialFileSink):
    """One row per frame, written and flushed as it comes; the format follows the extension.

    ``.csv`` (a header line, then rows), ``.jsonl`` / ``.ndjson`` (one JSON object per line) or
    ``.json`` (one JSON array of objects, closed on finish).

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

    def __init__(self, path: str | os.PathLike[str], columns: Iterable[str] | None = None) -> None:
        super().__init__(path, "stats", STATS_FORMATS)
        self.format = STATS_FORMATS[self.path.suffix.lower()]
        self.columns: list[str] | None = None if columns is None else list(columns)
        self.rows_written = 0
        try:
            self._file = open(self.partial_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise OutputError(f"cannot write stats {self.path}: {error.strerror}") from error
        self._csv = csv.writer(self._file) if self.format == "csv" else None
        if self.format == "json":
            self._file.write("[")
        if self.columns is not None:
            self._start(self.columns)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (a mapping of column name to value) and flush it to disk."""
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
            column: _json_safe(value) for column, value in zip(self.columns, values, strict=True)
        }
        text = json.dumps(record, allow_nan=False)
        if self.format == "jsonl":
            self._file.write(text + "\n")
        else:
            self._file.write(("\n" if self.rows_written == 0 else ",\n") + text)

    def _close_partial(self) -> bool:
        if self.format == "json":
            self._file.write("\n]\n" if self.rows_written else "]\n")
        self._file.close()
        return True

    def _close_partial_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


def _check_writable(path: Path, partial: Path, what: str) -> None:
    """Fail now, with a reason a user can fix, if ``path`` could not be written later."""
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"cannot write {what} to {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} to {path}: {parent} is not a folder")
    try:  # the only reliable test (permissions, read-only mounts, ACLs) is to try
        with open(partial, "wb"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write {what} to {path}: {error.strerror}") from error
    if path.exists() and not os.access(path, os.W_OK):
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} to {path}: the existing file is read-only")


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


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(_json_safe(value))
    return value
