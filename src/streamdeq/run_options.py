"""Deprecated: moved to :mod:`streamdeq.app.run_options` (this path works for one more release)."""

from ._deprecated import warn_moved
from .app.run_options import *  # noqa: F403

warn_moved("streamdeq.run_options", "streamdeq.app.run_options")
