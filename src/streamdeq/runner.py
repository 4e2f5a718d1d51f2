"""Deprecated: moved to :mod:`streamdeq.app.runner` (this path works for one more release)."""

from ._deprecated import warn_moved
from .app.runner import *  # noqa: F403

warn_moved("streamdeq.runner", "streamdeq.app.runner")
