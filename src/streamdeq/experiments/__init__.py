"""The paper's analyses as functions: each takes a model and a clip set and returns an
:class:`ExperimentResult` (rows, and ``save(out_dir)`` for CSV + PNG).

>>> clips = generated_clips(4, 20)                  # held-out street scenes, all frames labelled
>>> result = fig5(model, clips, iters=(1, 2))
>>> result.rows[0], result.save("out/")

The schemes are :class:`streamdeq.stream.StreamDEQ`'s modes; mIoU comes from
:class:`streamdeq.eval.segmentation.ConfusionMatrix`. Under ``torch.distributed`` each rank takes
its share of the clips and every rank returns the combined result.
"""

from __future__ import annotations

from collections.abc import Callable

from .clips import Clip, cityscapes_clips, clip_from_item, generated_clips
from .detection import DetectionClip, fig8, generated_detection_clips, table1_detect
from .fig2 import fig2
from .fig3 import fig3
from .fig5 import fig5
from .fig7 import fig7
from .loading import BUNDLED_MODEL, MissingWeightsError, load_model
from .result import ExperimentResult
from .streams import PAPER_ITERS, Scheme, StateTap, relative_distance
from .table1 import table1

#: Name -> experiment function, for ``streamdeq experiment NAME``.
EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "fig2": fig2,
    "fig3": fig3,
    "fig5": fig5,
    "fig7": fig7,
    "table1": table1,
    "fig8": fig8,
    "table1-detect": table1_detect,
}

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
    "load_model",
    "relative_distance",
    "table1",
    "table1_detect",
]
