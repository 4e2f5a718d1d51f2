"""Object detection on an MDEQ backbone: Faster R-CNN with a feature pyramid over the MDEQ
branches, split into ``inject`` / ``f`` / ``head`` so that streams run it unchanged.

>>> detector = create_model("mdeq-det-tiny-synthetic")   # or MDEQDetector(DetectorConfig(...))
>>> losses = detector(images, targets)                   # training: dict of four losses
>>> detections = detector.eval()(images)                  # list of {boxes, scores, labels}
"""

from __future__ import annotations

from .config import DetectorConfig, DetectorConfigError, RoIHeadSettings, RPNSettings
from .detector import LOSS_NAMES, MDEQDetector

__all__ = [
    "LOSS_NAMES",
    "DetectorConfig",
    "DetectorConfigError",
    "MDEQDetector",
    "RPNSettings",
    "RoIHeadSettings",
]
