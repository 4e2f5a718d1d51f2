"""Deprecated: moved to :mod:`streamdeq.cpu_allocator` (this path works for one more release)."""

from ._deprecated import warn_moved
from .cpu_allocator import *  # noqa: F403

warn_moved("streamdeq.runtime", "streamdeq.cpu_allocator")
