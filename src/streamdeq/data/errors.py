"""The errors a user meets reading and writing video, stats and images.

Each names the path and says what to do; each also derives from the builtin exception it refines
(FileNotFoundError, PermissionError, ValueError, OSError) so generic handlers keep working.
"""

from __future__ import annotations

from ..errors import StreamDEQError


class VideoError(StreamDEQError):
    """Base of every error about an input video, image folder or stream."""


class InputNotFoundError(VideoError, FileNotFoundError):
    """The input path does not exist."""


class InputNotReadableError(VideoError, PermissionError):
    """The input exists but this process may not read it."""


class NotAVideoError(VideoError, ValueError):
    """The input is not something FFmpeg can decode as video (text, audio only, unknown format)."""


class NoImagesError(VideoError, ValueError):
    """A folder given as input holds no image files."""


class StreamOpenError(VideoError, ConnectionError):
    """A network stream (rtsp://, http://, ...) could not be opened."""


class HardwareDecodingError(VideoError, RuntimeError):
    """A hardware decoder (``--hwaccel``) that this FFmpeg build lacks or that does not open."""


class CorruptVideoError(VideoError, ValueError):
    """A video that fails part-way: truncated, damaged, or a stream that broke off.

    Attributes:
        source: the path or URL.
        frames_read: how many frames were decoded and handed out before the failure; the caller
            has already received exactly these and can finish its outputs with them.
        reason: what failed, in a few words (e.g. the file and FFmpeg's message), for messages
            that sum up several failures.
    """

    def __init__(
        self, message: str, *, source: str = "", frames_read: int = 0, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.source = source
        self.frames_read = frames_read
        self.reason = reason


class OutputError(StreamDEQError, OSError):
    """An output file that cannot be written (missing folder, no permission, bad name)."""

    def __str__(self) -> str:  # OSError would format (errno, strerror) tuples otherwise
        return str(self.args[0]) if self.args else ""


class StatsSchemaError(StreamDEQError, ValueError):
    """A stats row with a column that the file's header does not have."""
