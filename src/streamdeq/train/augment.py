"""Segmentation augmentation on tensors: random rescale, crop, horizontal flip, colour jitter.

Each sample gets its own generator (see :mod:`.seeding`), so a sample is augmented the same way
whichever process and batch position it lands in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.labels import IGNORE_INDEX
from .recipe import AugmentSection


def to_unit_float(image: Tensor) -> Tensor:
    """(3, H, W) uint8 -> float32 in [0, 1]."""
    return image.float().div_(255.0)


def augment_segmentation(
    image: Tensor, label: Tensor, settings: AugmentSection, rng: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One augmented sample.

    Args:
        image: (3, H, W) float in [0, 1].
        label: (H, W) int64 train ids, IGNORE_INDEX (255) for unlabelled pixels.
        rng: this sample's generator.

    Returns:
        (image, label) of the crop size (or the input size without a crop); padding is 0 in
        the image and IGNORE_INDEX in the label, so it adds nothing to the loss.
    """
    low, high = settings.scale
    if (low, high) != (1.0, 1.0):
        factor = low + (high - low) * _uniform(rng)
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[2] * factor)))
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        label = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
    if settings.crop is not None:
        image, label = _random_crop(image, label, settings.crop, rng)
    if settings.flip and _uniform(rng) < 0.5:
        image, label = image.flip(-1), label.flip(-1)
    if settings.color_jitter > 0:
        image = _color_jitter(image, settings.color_jitter, rng)
    return image.contiguous(), label.contiguous()


def _uniform(rng: torch.Generator) -> float:
    return torch.rand((), generator=rng).item()


def _random_crop(
    image: Tensor, label: Tensor, crop: tuple[int, int], rng: torch.Generator
) -> tuple[Tensor, Tensor]:
    crop_h, crop_w = crop
    pad_h, pad_w = max(crop_h - image.shape[1], 0), max(crop_w - image.shape[2], 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    top = int(torch.randint(0, image.shape[1] - crop_h + 1, (), generator=rng))
    left = int(torch.randint(0, image.shape[2] - crop_w + 1, (), generator=rng))
    return (
        image[:, top : top + crop_h, left : left + crop_w],
        label[top : top + crop_h, left : left + crop_w],
    )


def _color_jitter(image: Tensor, strength: float, rng: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation, each scaled by a factor in [1 - s, 1 + s]."""
    factors = 1.0 + strength * (2.0 * torch.rand(3, generator=rng) - 1.0)
    brightness, contrast, saturation = factors.tolist()
    image = image * brightness
    gray = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
    image = (image - gray.mean()) * contrast + gray.mean()
    gray = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
    image = (image - gray) * saturation + gray
    return image.clamp_(0.0, 1.0)
