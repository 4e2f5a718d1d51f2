"""The paper's analyses as functions: each takes a model and a clip set and returns an
:class:`ExperimentResult` (rows, and ``save(out_dir)`` for CSV + PNG).

>>> clips = generated_clips(4, 20)                  # held-out street scenes, all frames labelled
>>> result = fig5(model, clips, iters=(1, 2))
>>> result.rows[0], result.save("out/")

The schemes are :class:`streamdeq.stream.StreamDEQ`'s modes. Table 1 and Fig. 5 score a model of
any task with its task's metric (segmentation: mIoU; detection: mAP@50; ``fig8`` and
``table1-detect`` are their detection names); Fig. 2, 3 and 7 analyse segmentation models. Under
``torch.distributed`` each rank takes its share of the clips and every rank returns the combined
result.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SettingsError
from ..registry import Registry
from .clips import Clip, cityscapes_clips, clip_from_item, generated_clips
from .detection import DetectionClip, fig8, generated_detection_clips, table1_detect
from .fig2 import fig2
from .fig3 import fig3
from .fig5 import fig5
from .fig7 import fig7
from .loading import BUNDLED_MODEL, MissingWeightsError, load_model
from .result import ExperimentResult
from .schemes import PAPER_ITERS, Scheme, StateTap, relative_distance
from .streaming import streaming
from .table1 import table1

#: Name -> experiment function, for ``streamdeq experiment NAME`` (``EXPERIMENTS.get(name)``
#: answers an unknown name with the known ones and the closest matches).
EXPERIMENTS: Registry[Callable[..., ExperimentResult]] = Registry("experiment", error=SettingsError)
EXPERIMENTS.register("fig2", fig2)
EXPERIMENTS.register("fig3", fig3)
EXPERIMENTS.register("fig5", fig5)
EXPERIMENTS.register("fig7", fig7)
EXPERIMENTS.register("table1", table1)
EXPERIMENTS.register("fig8", fig8)
EXPERIMENTS.register("table1-detect", table1_detect)
EXPERIMENTS.register("streaming", streaming)


def list_experiments() -> list[str]:
    """The experiment names ``streamdeq experiment`` takes, in the paper's order."""
    return EXPERIMENTS.names()


__all__ = [
    "BUNDLED_MODEL",
    "EXPERIMENTS",
    "PAPER_ITERS",
    "Clip",
    "DetectionClip",
    "ExperimentResult",
    "MissingWeightsError",
    "Scheme",
    "StateTap",
    "cityscapes_clips",
    "clip_from_item",
    "fig2",
    "fig3",
    "fig5",
    "fig7",
    "fig8",
    "generated_clips",
    "generated_detection_clips",
    "list_experiments",
    "load_model",
    "relative_distance",
    "streaming",
    "table1",
    "table1_detect",
]
