"""From a frame as it arrives (numpy or torch, uint8 or float) to the model's input, and back.

Preprocessing, in this order:

1. to a (1, 3, H, W) float tensor in [0, 1] on the stream's device (uint8 is divided by 255; float
   input is taken to be in [0, 1] already), RGB channel order;
2. normalised per channel, ``(x - mean) / std`` (ImageNet statistics by default, as the official
   MDEQ Cityscapes code uses);
3. padded at the bottom and right to the next multiple of ``model.input_multiple`` (with zeros by
   default, i.e. with the mean colour after normalisation).

The head's output is then cropped back to the frame (see :func:`crop_output`), so padding never
shows in the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SettingsError, StreamDEQError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MODES = ("constant", "replicate", "reflect")


class FrameError(StreamDEQError, ValueError):
    """A frame the engine cannot read (wrong shape, channel count or dtype)."""


@dataclass(frozen=True)
class PreprocessSettings:
    """How frames become model input.

    Attributes:
        mean, std: per-channel (RGB) normalisation applied to [0, 1] values. Use mean (0, 0, 0)
            and std (1, 1, 1) for float frames that are already normalised.
        pad_mode: how frames are padded to ``model.input_multiple``: "constant" (zeros after
            normalisation), "replicate" or "reflect".
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(_is_real(v) and math.isfinite(v) for v in value):
                raise SettingsError(f"preprocess {name} must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if not all(s > 0 for s in self.std):
            raise SettingsError(f"preprocess std must be > 0, got {self.std!r}")
        if self.pad_mode not in PAD_MODES:
            raise SettingsError(
                f"pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}"
            )


@dataclass
class FrameInput:
    """One frame ready for the model.

    Attributes:
        x: (1, 3, Hp, Wp) normalised and padded input.
        unit: (1, 3, H, W) the frame in [0, 1] before normalisation (for shot detection).
        size: (H, W) of the frame as it arrived.
    """

    x: Tensor
    unit: Tensor
    size: tuple[int, int]

    @property
    def padded_size(self) -> tuple[int, int]:
        return (self.x.shape[-2], self.x.shape[-1])


def to_unit_tensor(frame: object, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, 3, H, W) values in [0, 1] of an (H, W, 3) uint8/float array or tensor, or a
    (3, H, W) / (1, 3, H, W) float tensor."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise FrameError(f"a numpy frame must be (H, W, 3), got shape {frame.shape}")
        frame = torch.from_numpy(np.ascontiguousarray(frame))
        return _scale(frame.permute(2, 0, 1).unsqueeze(0), device, dtype)
    if not isinstance(frame, Tensor):
        raise FrameError(
            f"a frame must be a numpy array or a torch tensor, got {type(frame).__name__}"
        )
    if frame.dtype == torch.uint8:
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise FrameError(f"a uint8 tensor frame must be (H, W, 3), got {tuple(frame.shape)}")
        return _scale(frame.permute(2, 0, 1).unsqueeze(0), device, dtype)
    if frame.dim() == 3:
        frame = frame.unsqueeze(0)
    if frame.dim() != 4 or frame.shape[:2] != (1, 3):
        raise FrameError(
            f"a float tensor frame must be (3, H, W) or (1, 3, H, W), got {tuple(frame.shape)}"
        )
    return _scale(frame, device, dtype)


def _scale(chw: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    if chw.shape[-2] < 1 or chw.shape[-1] < 1:
        raise FrameError(f"a frame must have at least one pixel, got {tuple(chw.shape)}")
    if chw.dtype == torch.uint8:
        return chw.to(device=device).to(dtype) / 255.0
    if not chw.is_floating_point():
        raise FrameError(f"frames must be uint8 or floating point, got {chw.dtype}")
    return chw.to(device=device, dtype=dtype)


def prepare_frame(
    frame: object,
    settings: PreprocessSettings,
    multiple: int,
    device: torch.device,
    dtype: torch.dtype,
) -> FrameInput:
    """Convert, normalise and pad one frame (see the module docstring)."""
    unit = to_unit_tensor(frame, device, dtype)
    mean = torch.tensor(settings.mean, device=device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(settings.std, device=device, dtype=dtype).view(1, 3, 1, 1)
    x = (unit - mean) / std
    height, width = unit.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h or pad_w:
        if settings.pad_mode == "reflect" and (pad_h >= height or pad_w >= width):
            raise FrameError(
                f"a {height}x{width} frame is too small to reflect-pad to a multiple of "
                f"{multiple}; use pad_mode='replicate' or 'constant'"
            )
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=settings.pad_mode)
    return FrameInput(x=x, unit=unit, size=(height, width))


def crop_output(output: Tensor, size: tuple[int, int], padded_size: tuple[int, int]) -> Tensor:
    """Remove the padding from a (B, C, h, w) output computed on a padded frame.

    The output may be at a lower resolution than the input (MDEQ segmentation logits are at 1/4):
    it keeps the top-left ``ceil(H * h / Hp) x ceil(W * w / Wp)`` part, the pixels that see the
    frame. Detections (a list of per-image dicts with ``boxes`` (N, 4) x1 y1 x2 y2) get their
    boxes clipped to the frame, dropping those left without area. Other outputs (class scores)
    are returned unchanged.
    """
    if isinstance(output, list) and tuple(size) != tuple(padded_size):
        return [_clip_detections(d, size) if isinstance(d, dict) else d for d in output]
    if not isinstance(output, Tensor) or output.dim() != 4 or tuple(size) == tuple(padded_size):
        return output
    out_h, out_w = output.shape[-2:]
    keep_h = math.ceil(size[0] * out_h / padded_size[0])
    keep_w = math.ceil(size[1] * out_w / padded_size[1])
    return output[..., :keep_h, :keep_w]


def _clip_detections(detections: dict, size: tuple[int, int]) -> dict:
    boxes = detections.get("boxes")
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        return detections
    height, width = size
    limit = boxes.new_tensor([width, height, width, height])
    clipped = torch.minimum(boxes, limit)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    per_box = {
        k: v[keep] for k, v in detections.items() if isinstance(v, Tensor) and len(v) == len(boxes)
    }
    return {**detections, **per_box, "boxes": clipped[keep]}


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
