"""Deprecated: moved to :mod:`streamdeq.tasks.detection.render` (this path works for one more release)."""

from ._deprecated import warn_moved
from .tasks.detection.render import *  # noqa: F403

warn_moved("streamdeq.render_detection", "streamdeq.tasks.detection.render")
