"""Deprecated: the detector configurations are registered by the detection task
(:mod:`streamdeq.tasks.detection.models`); this path works for one more release."""

from ..._deprecated import warn_moved
from ...tasks.detection.models import (  # noqa: F401
    SYNTHETIC_THING_IDS,
    TINY_SYNTHETIC,
    TINY_SYNTHETIC_WEIGHTS,
    XL_IMAGENET_VID,
)

warn_moved("streamdeq.models.detection.zoo", "streamdeq.tasks.detection.models")
