"""Decoding video on a GPU's decoder (NVDEC and the like) through FFmpeg's hardware acceleration.

Why: every camera's every frame is decoded whether the model takes it or not, and at 1080p
that is over ten milliseconds of CPU a frame (0.4 cores for a 30 frames/s camera on this
project's CPU; benchmarks/hwdecode.py), so dozens of cameras need more cores for decoding than
for anything else. A GPU's video decoder does that work beside its compute units.

What it does and does not do: FFmpeg decodes on the device, and each frame is copied back to
the host (NV12) and converted to RGB there, as a software-decoded one is; so the CPU still
converts and the model still uploads, but no longer decodes. The pixels are those of the
software decoder (decoding H.264/HEVC is exact). A codec the device cannot decode is decoded on
the CPU instead, stream by stream, rather than failing.

On CUDA the decoders of a process share the GPU's primary context (``primary_ctx``), the one
torch uses: a context of its own per camera would cost hundreds of MB of GPU memory each.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.logging
import numpy as np
from av.codec import Codec
from av.codec.hwaccel import HWAccel, hwdevices_available

from .errors import HardwareDecodingError

#: The device types accepted: FFmpeg's name of NVIDIA's decoder (NVDEC).
SUPPORTED = ("cuda",)
#: The codec a device is checked with: the one every hardware decoder has.
_CHECK_CODEC = "h264"


@dataclass(frozen=True)
class HardwareDecoding:
    """Which hardware decoder to use: FFmpeg's device type and, optionally, which device.

    Attributes:
        device_type: FFmpeg's name of the device type: "cuda", NVIDIA's NVDEC.
        device: which device of that type, a GPU number ("1"); None: FFmpeg's default (the
            first).
    """

    device_type: str
    device: str | None = None

    @classmethod
    def parse(cls, text: str, *, cuda_index: int | None = None) -> HardwareDecoding:
        """``"cuda"`` or ``"cuda:N"``; anything else raises :class:`HardwareDecodingError`.

        Only NVIDIA's decoder is accepted: it is the one this project checks (on a GPU
        machine, benchmarks/hwdecode.py); FFmpeg's other device types (qsv, vaapi, ...) would
        need their own checks and advice. ``cuda_index``: the GPU a plain ``"cuda"`` means (the
        model's, so that decoded frames and the model share a GPU); None: FFmpeg's default,
        the first."""
        device_type, colon, device = text.strip().partition(":")
        device_type = device_type.lower()
        if device_type not in SUPPORTED or (colon and not (device.isascii() and device.isdigit())):
            raise HardwareDecodingError(
                f"unknown hardware decoder {text!r}; use cuda (NVIDIA's NVDEC, on the model's "
                "GPU) or cuda:N (GPU number N)"
            )
        if device_type not in hwdevices_available():
            raise HardwareDecodingError(
                f"this FFmpeg build has no {device_type} hardware decoding; decode on the CPU "
                "(leave out --hwaccel)"
            )
        if not colon and cuda_index is not None:
            device = str(cuda_index)
        return cls(device_type, str(int(device)) if device else None)

    def __str__(self) -> str:
        return self.device_type if self.device is None else f"{self.device_type}:{self.device}"

    def hwaccel(self) -> HWAccel:
        """PyAV's description of it for ``av.open``: frames copied to the host, software
        decoding for a codec the device lacks, and on CUDA the primary context."""
        options = {"primary_ctx": "1"} if self.device_type == "cuda" else None
        return HWAccel(self.device_type, self.device, allow_software_fallback=True, options=options)

    def check(self) -> None:
        """Open the device and decode a few frames on it, once per process (cached), so that
        a machine without it fails at once with FFmpeg's reason, not at each source with an
        unrelated-looking error, and a decoder that opens but silently hands the work back to
        the CPU (NVDEC without the driver's libnvcuvid, as in a container started without
        the ``video`` driver capability) is refused rather than left to load the cores."""
        _check_device(self.device_type, self.device)


_SUGGESTION = (
    "check the GPU and its driver (NVDEC needs the driver's libnvcuvid; in a container, "
    "NVIDIA_DRIVER_CAPABILITIES must include video), or decode on the CPU (leave out --hwaccel)"
)


@functools.cache
def _check_device(device_type: str, device: str | None) -> None:
    spec = HardwareDecoding(device_type, device)
    with _ffmpeg_log() as logs:
        try:
            _open_device(spec)
            on_device = _decodes_on_device(spec)
        except (av.FFmpegError, NotImplementedError, RuntimeError) as error:
            reason = _reason(logs) or getattr(error, "strerror", None) or str(error)
            raise HardwareDecodingError(
                f"cannot use the {spec} hardware decoder: {reason}; {_SUGGESTION}"
            ) from None
    if not on_device:
        reason = _reason(logs) or "FFmpeg gave no reason"
        raise HardwareDecodingError(
            f"the {spec} hardware decoder opens but FFmpeg decoded on the CPU ({reason}); "
            f"{_SUGGESTION}"
        )


@contextlib.contextmanager
def _ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages meanwhile, in this thread: its reasons are only in its log."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(level)


def _reason(logs: list[tuple[int, str, str]]) -> str:
    return "; ".join(message.strip() for _, _, message in logs if message.strip())


def _open_device(spec: HardwareDecoding) -> None:
    spec.hwaccel().create(Codec(_CHECK_CODEC, "r"))


def _decodes_on_device(spec: HardwareDecoding) -> bool:
    """Whether a probe clip's frames come from the device: frames copied back from a device
    arrive in its layout (NV12 from NVDEC), which FFmpeg's software H.264 decoder never gives
    (planar YUV 4:2:0), so the same layout both ways means FFmpeg fell back to the CPU."""
    clip = _probe_clip()
    formats = []
    for hwaccel in (None, spec.hwaccel()):
        with av.open(io.BytesIO(clip), hwaccel=hwaccel) as container:
            formats.append(next(container.decode(video=0)).format.name)
    return formats[0] != formats[1]


@functools.cache
def _probe_clip() -> bytes:
    """A few 128x128 H.264 frames (every hardware decoder's minimum size is below that)."""
    target = io.BytesIO()
    with av.open(target, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        for shade in range(0, 200, 50):
            image = np.full((128, 128, 3), shade, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return target.getvalue()
