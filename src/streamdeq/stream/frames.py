"""From a frame as it arrives (numpy or torch, uint8 or float) to the model's input, and back.

Preprocessing, in this order:

1. to a (1, 3, H, W) float tensor in [0, 1] on the stream's device (uint8 is divided by 255; float
   input must be in [0, 1] already: one whose maximum is far above 1 is refused as a [0, 255]
   image), RGB channel order;
2. resized, if ``resize`` is set, to fit its size with the aspect ratio kept (bilinear);
3. normalised per channel, ``(x - mean) / std`` (ImageNet statistics by default, as the official
   MDEQ Cityscapes code uses);
4. padded at the bottom and right to the next multiple of ``model.input_multiple`` (with zeros by
   default, i.e. with the mean colour after normalisation).

The head's output is then cropped back to the frame (see :func:`crop_output`, or the model's own
``crop_output``), so padding never shows in the results, and a resized frame's coordinates are
mapped back to the frame's own pixels (:func:`output_to_frame`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SettingsError, StreamDEQError
from ..validation import check_choice, is_real

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MODES = ("constant", "replicate", "reflect")
#: A float frame above this is taken for a [0, 255] image (far above 1, so rounding and
#: slightly out-of-range [0, 1] data pass).
FLOAT_FRAME_MAX = 2.0


class FrameError(StreamDEQError, ValueError):
    """A frame the engine cannot read (wrong shape, channel count or dtype)."""


@dataclass(frozen=True)
class PreprocessSettings:
    """How frames become model input.

    Attributes:
        mean, std: per-channel (RGB) normalisation applied to [0, 1] values. Use mean (0, 0, 0)
            and std (1, 1, 1) for float frames that are already normalised (their range is
            then not checked).
        pad_mode: how frames are padded to ``model.input_multiple``: "constant" (zeros after
            normalisation), "replicate" or "reflect".
        resize: the size frames are scaled to before padding: (H, W) scales each frame to
            FIT inside H x W with its aspect ratio kept (never stretched; one side may end
            up shorter), a single int is the length of the short side; None keeps the frame's
            size. Why: weights trained at one resolution see objects at the scale they were
            trained on, and a 4K stream costs what its inference size costs. Outputs still
            come back in the frame's own pixels (see :func:`output_to_frame`).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_mode: str = "constant"
    resize: tuple[int, int] | int | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(is_real(v) and math.isfinite(v) for v in value):
                raise SettingsError(
                    f"preprocess {name} must be 3 finite numbers, got {value!r}", field=name
                )
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if not all(s > 0 for s in self.std):
            raise SettingsError(f"preprocess std must be > 0, got {self.std!r}", field="std")
        check_choice("pad_mode", self.pad_mode, PAD_MODES)
        object.__setattr__(self, "resize", _checked_resize(self.resize))


@dataclass
class FrameInput:
    """One frame ready for the model.

    Attributes:
        x: (1, 3, Hp, Wp) normalised and padded input.
        unit: (1, 3, H, W) the frame in [0, 1] before normalisation (for shot detection), after
            any resize.
        size: (H, W) the model sees before padding: the frame's size, or its resized size.
        source_size: (H, W) of the frame as it arrived (None: ``size``, no resize).
    """

    x: Tensor
    unit: Tensor
    size: tuple[int, int]
    source_size: tuple[int, int] | None = None

    @property
    def padded_size(self) -> tuple[int, int]:
        return (self.x.shape[-2], self.x.shape[-1])

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): source pixels per model pixel, vertically and horizontally ((1.0, 1.0)
        without a resize). Per axis, since a fitted size rounds each side on its own."""
        if self.source_size is None:
            return (1.0, 1.0)
        return (self.source_size[0] / self.size[0], self.source_size[1] / self.size[1])


def to_unit_tensor(
    frame: object, device: torch.device, dtype: torch.dtype, *, unit_range: bool = True
) -> Tensor:
    """(1, 3, H, W) values in [0, 1] of an (H, W, 3) uint8/float array or tensor, or a
    (3, H, W) / (1, 3, H, W) float tensor.

    ``unit_range``: reject a float frame whose maximum is above ``FLOAT_FRAME_MAX`` (a
    [0, 255] image passed as float would otherwise stream as a white-out, without an error);
    off for frames that are already normalised."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise FrameError(f"a numpy frame must be (H, W, 3), got shape {frame.shape}")
        frame = torch.from_numpy(np.ascontiguousarray(frame))
        return _scale(frame.permute(2, 0, 1).unsqueeze(0), device, dtype, unit_range)
    if not isinstance(frame, Tensor):
        raise FrameError(
            f"a frame must be a numpy array or a torch tensor, got {type(frame).__name__}"
        )
    if frame.dtype == torch.uint8:
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise FrameError(f"a uint8 tensor frame must be (H, W, 3), got {tuple(frame.shape)}")
        return _scale(frame.permute(2, 0, 1).unsqueeze(0), device, dtype, unit_range)
    if frame.dim() == 3:
        frame = frame.unsqueeze(0)
    if frame.dim() != 4 or frame.shape[:2] != (1, 3):
        raise FrameError(
            f"a float tensor frame must be (3, H, W) or (1, 3, H, W), got {tuple(frame.shape)}"
        )
    return _scale(frame, device, dtype, unit_range)


def _scale(chw: Tensor, device: torch.device, dtype: torch.dtype, unit_range: bool) -> Tensor:
    if chw.shape[-2] < 1 or chw.shape[-1] < 1:
        raise FrameError(f"a frame must have at least one pixel, got {tuple(chw.shape)}")
    if chw.dtype == torch.uint8:
        return chw.to(device=device).to(dtype) / 255.0
    if not chw.is_floating_point():
        raise FrameError(f"frames must be uint8 or floating point, got {chw.dtype}")
    if unit_range:
        _check_unit_range(chw)
    return chw.to(device=device, dtype=dtype)


def _check_unit_range(chw: Tensor) -> None:
    # one reduction on the frame where it arrived, before it moves: a numpy or CPU frame costs
    # no device synchronisation; a frame already on a GPU costs one, at the start of a step
    # (when the stream has no work of its own queued). NaN/Inf pass: a non-finite frame is the
    # divergence handling's to report, frame by frame, not an error that ends the stream.
    peak = float(chw.amax())
    if math.isfinite(peak) and peak > FLOAT_FRAME_MAX:
        raise FrameError(
            f"a float frame must hold values in [0, 1], but its maximum is {peak:g}; pass "
            "[0, 255] images as uint8, or divide them by 255"
        )


def prepare_frame(
    frame: object,
    settings: PreprocessSettings,
    multiple: int,
    device: torch.device,
    dtype: torch.dtype,
) -> FrameInput:
    """Convert, normalise and pad one frame (see the module docstring)."""
    normalised = settings.mean == (0.0, 0.0, 0.0) and settings.std == (1.0, 1.0, 1.0)
    unit = to_unit_tensor(frame, device, dtype, unit_range=not normalised)
    return _model_inputs(unit, settings, multiple)[0]


def prepare_frames(
    frames: Sequence[object],
    settings: Sequence[PreprocessSettings],
    multiple: int,
    device: torch.device,
    dtype: torch.dtype,
) -> list[FrameInput]:
    """:func:`prepare_frame` of each frame with its settings, equal to it bit for bit.

    (H, W, 3) uint8 arrays of one shape and settings, the frames decoders hand out, are
    prepared together: stacked on the host, one copy to the device, then one of each operation
    for all of them. Why: done frame by frame, each of a dozen small operations is a kernel
    launch on a GPU and a release and re-take of the GIL, which with dozens of streams (and
    their decoding threads) cost more than the batched solve itself."""
    inputs: list[FrameInput | None] = [None] * len(frames)
    groups: dict[tuple, list[int]] = {}
    for i, (frame, preprocess) in enumerate(zip(frames, settings, strict=True)):
        if _is_rgb_uint8_array(frame):
            groups.setdefault((frame.shape, preprocess), []).append(i)
        else:
            inputs[i] = prepare_frame(frame, preprocess, multiple, device, dtype)
    for (_, preprocess), rows in groups.items():
        if len(rows) == 1:
            inputs[rows[0]] = prepare_frame(frames[rows[0]], preprocess, multiple, device, dtype)
            continue
        stacked = torch.from_numpy(np.stack([frames[i] for i in rows])).permute(0, 3, 1, 2)
        unit = _scale(stacked, device, dtype, unit_range=False)
        for i, prepared in zip(rows, _model_inputs(unit, preprocess, multiple), strict=True):
            inputs[i] = prepared
    return inputs


@functools.lru_cache(maxsize=64)
def _statistics(
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """(1, 3, 1, 1) mean and std tensors, made once per device and dtype: on a GPU each new
    one is a blocking host->device copy, every frame. Read only (shared by all streams)."""
    shape = (1, 3, 1, 1)
    as_tensor = functools.partial(torch.tensor, device=device, dtype=dtype)
    with torch.inference_mode(False):  # cached: made under inference mode, unusable outside
        return as_tensor(mean).view(shape), as_tensor(std).view(shape)


def _is_rgb_uint8_array(frame: object) -> bool:
    return (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.ndim == 3
        and frame.shape[2] == 3
        and frame.shape[0] >= 1
        and frame.shape[1] >= 1
    )


def _model_inputs(unit: Tensor, settings: PreprocessSettings, multiple: int) -> list[FrameInput]:
    """(B, 3, H, W) frames in [0, 1] -> B FrameInputs: resized, normalised, padded."""
    mean, std = _statistics(settings.mean, settings.std, unit.device, unit.dtype)
    source_size = (unit.shape[-2], unit.shape[-1])
    if settings.resize is not None:
        unit = _resized(unit, fitted_size(source_size, settings.resize))
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
    resized = source_size != (height, width)
    size, source = (height, width), source_size if resized else None
    if unit.shape[0] == 1:
        return [FrameInput(x=x, unit=unit, size=size, source_size=source)]
    rows = range(unit.shape[0])
    return [FrameInput(x[k : k + 1], unit[k : k + 1], size, source) for k in rows]


def fitted_size(size: tuple[int, int], resize: tuple[int, int] | int) -> tuple[int, int]:
    """(H, W) of a ``size`` frame scaled to fit inside ``resize`` (H, W), or with its short side
    ``resize`` (an int), aspect ratio kept; the other side is rounded down (so it fits), at
    least 1. Integer arithmetic: the limiting side is exact, never off by one from floats."""
    height, width = size
    if isinstance(resize, int):
        if height <= width:
            return resize, max(1, width * resize // height)
        return max(1, height * resize // width), resize
    box_h, box_w = resize
    if box_h * width <= box_w * height:  # the height limits: box_h / height <= box_w / width
        return box_h, max(1, width * box_h // height)
    return max(1, height * box_w // width), box_w


def _resized(unit: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(unit.shape[-2:]) == tuple(size):
        return unit
    shrink = size[0] < unit.shape[-2] or size[1] < unit.shape[-1]
    # antialiasing when shrinking: plain bilinear would alias fine textures into noise
    return F.interpolate(unit, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def _checked_resize(resize: object) -> tuple[int, int] | int | None:
    """``resize`` as None, an int or an (H, W) tuple of ints, each >= 1."""
    if resize is None:
        return None
    if _is_size(resize):
        return resize
    if isinstance(resize, tuple | list) and len(resize) == 2 and all(map(_is_size, resize)):
        return (resize[0], resize[1])
    raise SettingsError(
        "resize must be an integer >= 1 (the short side), a (height, width) pair of integers "
        f">= 1, or None, got {resize!r}",
        field="resize",
    )


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def crop_output(output: Any, size: tuple[int, int], padded_size: tuple[int, int]) -> Any:
    """Remove the padding from a dense (B, C, h, w) output computed on a padded frame.

    The output may be at a lower resolution than the input (MDEQ segmentation logits are at 1/4):
    it keeps the top-left ``ceil(H * h / Hp) x ceil(W * w / Wp)`` part, the pixels that see the
    frame. Other outputs (class scores, per-image lists) are returned unchanged. This is the
    default of the engine; a model whose output is not dense provides its own
    ``crop_output(output, size, padded_size)`` (the detector clips its boxes), so the engine
    never needs to know what a task's output looks like.
    """
    if not isinstance(output, Tensor) or output.dim() != 4 or tuple(size) == tuple(padded_size):
        return output
    out_h, out_w = output.shape[-2:]
    keep_h = math.ceil(size[0] * out_h / padded_size[0])
    keep_w = math.ceil(size[1] * out_w / padded_size[1])
    return output[..., :keep_h, :keep_w]


def output_cropper(model: object) -> Callable[[Any, tuple[int, int], tuple[int, int]], Any]:
    """The model's own ``crop_output`` when it has one, else :func:`crop_output`."""
    own = getattr(model, "crop_output", None)
    return own if callable(own) else crop_output


def output_to_frame(model: object) -> Callable[[Any, FrameInput], Any]:
    """``(output, inp) -> output`` for the frame as it arrived: padding cropped (see
    :func:`output_cropper`), then, for a resized frame, the model's own
    ``rescale_output(output, scale)`` with ``scale = inp.scale`` (source pixels per model pixel,
    (sy, sx)) when it has one.

    Why a hook, and none for dense outputs: only the model knows where its output holds
    coordinates (the detector scales its boxes), so the engine stays task-free; dense outputs
    (logits) stay at model resolution, which is cheaper than upsampling every frame and is
    what the renderers expect anyway (they already upsample low-resolution logits to the
    frame)."""
    crop = output_cropper(model)
    rescale = getattr(model, "rescale_output", None)

    def to_frame(output: Any, inp: FrameInput) -> Any:
        output = crop(output, inp.size, inp.padded_size)
        if inp.source_size is not None and callable(rescale):
            output = rescale(output, inp.scale)
        return output

    return to_frame
