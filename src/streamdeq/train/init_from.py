"""Start a model's backbone from an official ImageNet MDEQ checkpoint, as the official
Cityscapes models were trained: stem, injection and equilibrium layer are copied, the task head
stays newly initialised (a classification head has nothing to give a segmentation model)."""

from __future__ import annotations

from torch import nn

from ..models import CheckpointMismatchError
from ..models.checkpoints import HEAD_PREFIX
from ..models.resolve import resolve_model
from .recipe import InitFrom


def load_backbone(model: nn.Module, source: InitFrom) -> list[str]:
    """Copy every non-head tensor of the official checkpoint into ``model`` (into its
    ``backbone`` for a detector, as the paper's ImageNet-initialised Faster R-CNN).

    Returns the names loaded. Raises :class:`CheckpointMismatchError` naming every backbone
    tensor the checkpoint lacks or has in another shape (e.g. a different width), and
    ``CheckpointError`` / ``ModelConfigError`` when the files cannot be read.
    """
    model = getattr(model, "backbone", model)  # a detector's MDEQ is its backbone
    official = resolve_model(checkpoint=source.state_dict, config=source.official_yaml).model
    provided = official.state_dict()
    own = model.state_dict()
    backbone = [k for k in own if not k.startswith(HEAD_PREFIX)]
    missing = [k for k in backbone if k not in provided]
    wrong = [
        (k, tuple(own[k].shape), tuple(provided[k].shape))
        for k in backbone
        if k in provided and provided[k].shape != own[k].shape
    ]
    if missing or wrong:
        raise CheckpointMismatchError(missing, [], wrong, source=source.state_dict)
    model.load_state_dict({k: provided[k] for k in backbone}, strict=False)
    return backbone
