"""The errors the serving layer raises on purpose, each with the HTTP status the API answers with.

``str(err)`` is the one-line reason the API puts in ``{"error": ...}``; the command line shows the
same line. Deriving from :class:`~streamdeq.errors.StreamDEQError` keeps the CLI's one-line
handling for free.
"""

from __future__ import annotations

import re

from ..errors import StreamDEQError


class ServiceError(StreamDEQError):
    """A request the service cannot honour; ``status`` is the HTTP status that says why."""

    status: int = 400


class NotFoundError(ServiceError, KeyError):
    """An unknown stream id."""

    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(ServiceError):
    """A stream id that already exists."""

    status = 409


class LimitError(ServiceError):
    """``--max-streams`` reached."""

    status = 409


class SourceRejectedError(ServiceError, ValueError):
    """A source the source policy does not allow (outside the media root, a forbidden scheme or
    host)."""

    status = 400


class SubscriptionClosed(StreamDEQError):
    """A subscription read after the service stopped or the subscription was closed."""


#: The longest text a message quotes from a request (an id, a field name): an error line must
#: stay one readable line whatever a client sends.
QUOTE_LIMIT = 40


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said when longer."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{length}"


_PYTHON_WORDS = re.compile(r"\b(or|got|be) (None|True|False)\b|\b(True) or (False)\b")
_JSON_WORDS = {"None": "null", "True": "true", "False": "false"}


def json_words(message: str) -> str:
    """``message`` in JSON's words: the library's validators say "or None" and "True or False"
    to Python callers; an API client (or a YAML file) says null, true and false."""

    def to_json(match: re.Match[str]) -> str:
        return re.sub(r"None|True|False", lambda word: _JSON_WORDS[word.group()], match.group())

    return _PYTHON_WORDS.sub(to_json, message)
