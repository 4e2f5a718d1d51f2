"""Deprecated: moved to :mod:`streamdeq.app.demo` (this path works for one more release)."""

from ._deprecated import warn_moved
from .app.demo import *  # noqa: F403

warn_moved("streamdeq.demo", "streamdeq.app.demo")
