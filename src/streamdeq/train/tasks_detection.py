"""Deprecated: the detection training task lives in :mod:`streamdeq.tasks.detection.training`;
this path works for one more release."""

from .._deprecated import warn_moved
from ..tasks.detection.training import DetectionTask  # noqa: F401

warn_moved("streamdeq.train.tasks_detection", "streamdeq.tasks.detection.training")
