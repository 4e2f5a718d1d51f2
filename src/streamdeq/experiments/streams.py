"""Deprecated: moved to :mod:`streamdeq.experiments.schemes` (the old name read like the
``streamdeq.stream`` package); the label-map helpers moved to
:mod:`streamdeq.tasks.segmentation.metric`. This path works for one more release."""

from __future__ import annotations

from .._deprecated import warn_moved
from ..tasks.segmentation.metric import as_label_tensor, predict_labels
from .schemes import *  # noqa: F403
from .schemes import __all__ as _moved

warn_moved("streamdeq.experiments.streams", "streamdeq.experiments.schemes")

__all__ = [*_moved, "as_label_tensor", "predict_labels"]
