"""The exceptions a user can meet, under one base class.

The command line turns any :class:`StreamDEQError` into one line on stderr and a non-zero exit;
library users can catch the base class or the specific one. Each also derives from the builtin
exception it refines (ValueError, OSError), so generic handlers keep working.
"""

from __future__ import annotations


class StreamDEQError(Exception):
    """Base of every error streamdeq raises on purpose."""


class SettingsError(StreamDEQError, ValueError):
    """An unknown, conflicting or out-of-range setting.

    Attributes:
        field: the settings field at fault ("iters", "max_iter_cap", ...) when one is, so that a
            front end can name its own spelling of it (the command line says ``--max-iters``).
    """

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownModelError(SettingsError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(StreamDEQError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""
