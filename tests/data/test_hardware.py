"""Hardware decoding (``--hwaccel``): named, checked once, plumbed into FFmpeg, and a machine
without the device told so in one line before any source is read.

This project's CI has no GPU: the decoding itself is checked on a GPU machine
(benchmarks/hwdecode.py in benchmarks/gpu_checks.sh); here, everything around it, and the
positive path only where a CUDA decoder opens."""

from __future__ import annotations

import io

import av
import av.logging
import numpy as np
import pytest
from av.codec.hwaccel import hwdevices_available

from streamdeq.data import HardwareDecoding, HardwareDecodingError, open_video
from streamdeq.data import hardware as hardware_module

from .clips import write_clip, write_png


def cuda_decoder_opens() -> bool:
    try:
        HardwareDecoding("cuda").check()
    except HardwareDecodingError:
        return False
    return True


needs_no_cuda = pytest.mark.skipif(
    "cuda" not in hwdevices_available() or cuda_decoder_opens(),
    reason="a CUDA decoder opens here (or FFmpeg lacks cuda)",
)


def test_names_parse_with_an_optional_device():
    assert HardwareDecoding.parse("cuda") == HardwareDecoding("cuda", None)
    assert HardwareDecoding.parse(" CUDA:1 ") == HardwareDecoding("cuda", "1")
    assert str(HardwareDecoding.parse("cuda:1")) == "cuda:1"
    assert str(HardwareDecoding.parse("cuda")) == "cuda"


def test_a_plain_cuda_follows_the_models_gpu_but_an_explicit_one_stays():
    """Why: frames decoded on the GPU the model runs on need no hop between GPUs."""
    assert HardwareDecoding.parse("cuda", cuda_index=2).device == "2"
    assert HardwareDecoding.parse("cuda:0", cuda_index=2).device == "0"


@pytest.mark.parametrize(
    "text", ["nvdec", "qsv", "cuda:x", "cuda:1.5", "cuda:0:1", "cuda:-1", "cuda:", "cuda:\u00b2"]
)
def test_anything_but_cuda_or_cuda_n_is_refused_in_one_line(text):
    """Only NVDEC is checked by this project, and PyAV would raise a bare ValueError on a
    device number that is not one."""
    with pytest.raises(HardwareDecodingError) as info:
        HardwareDecoding.parse(text)
    assert str(info.value) == (
        f"unknown hardware decoder {text!r}; use cuda (NVIDIA's NVDEC, on the model's GPU) or "
        "cuda:N (GPU number N)"
    )


def test_a_gpu_number_is_normalised():
    assert HardwareDecoding.parse("cuda:01") == HardwareDecoding("cuda", "1")


def test_ffmpeg_gets_host_frames_a_software_fallback_and_cudas_primary_context():
    """Host frames: the rest of the pipeline (RGB conversion, shared memory, the model's upload)
    is the CPU path's. Fallback: a codec NVDEC lacks is decoded on the CPU, not refused. The
    primary context: one per process, where a context per camera would cost GPU memory each."""
    cuda = HardwareDecoding("cuda", "1").hwaccel()
    assert not cuda.is_hw_owned
    assert cuda.options == {"primary_ctx": "1"}
    assert cuda.device_id == 1


@needs_no_cuda
def test_without_the_device_opening_says_so_with_ffmpegs_reason(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    with pytest.raises(HardwareDecodingError) as info:
        open_video(clip, hwaccel="cuda")
    message = str(info.value)
    assert message.startswith("cannot use the cuda hardware decoder: ")
    assert "CUDA" in message.split(":", 1)[1]  # FFmpeg's own reason, from its log
    assert "leave out --hwaccel" in message and "\n" not in message
    # the same file opens on the CPU: the error is about the device, not the file
    assert len(list(open_video(clip))) > 0


@needs_no_cuda
def test_an_image_folder_is_checked_too(tmp_path):
    """Its images are decoded on the CPU, but a missing GPU decoder asked for is told at once,
    as `streamdeq serve` tells it at start whatever its sources."""
    (tmp_path / "frames").mkdir()
    write_png(tmp_path / "frames" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(HardwareDecodingError, match="cannot use the cuda hardware decoder"):
        open_video(tmp_path / "frames", hwaccel="cuda")


@needs_no_cuda
def test_a_failed_check_is_not_cached_and_leaves_ffmpegs_log_level_alone():
    level = av.logging.get_level()
    for _ in range(2):  # a GPU that comes back later is found then
        with pytest.raises(HardwareDecodingError):
            HardwareDecoding("cuda").check()
    assert av.logging.get_level() == level
    assert hardware_module._check_device.cache_info().currsize == 0


@pytest.mark.skipif(not cuda_decoder_opens(), reason="no CUDA video decoder here")
def test_frames_decoded_on_the_gpu_are_the_cpus(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", width=256, height=128)
    on_cpu = [frame.image for frame in open_video(clip)]
    on_gpu = [frame.image for frame in open_video(clip, hwaccel="cuda")]
    assert len(on_gpu) == len(on_cpu)
    worst = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(on_cpu, on_gpu))
    assert worst <= 2  # exact decoding; only the chroma layout into RGB may differ


def test_a_decoder_that_opens_but_hands_the_work_to_the_cpu_is_refused(monkeypatch):
    """NVDEC without libnvcuvid (a container without the driver's video capability): the
    CUDA device opens, FFmpeg falls back to its software decoder without an error, and every
    camera would load the CPU while the operator believes it decoded on the GPU."""
    monkeypatch.setattr(hardware_module, "_open_device", lambda spec: None)
    monkeypatch.setattr(HardwareDecoding, "hwaccel", lambda self: None)  # FFmpeg's software path
    with pytest.raises(HardwareDecodingError) as info:
        HardwareDecoding("cuda", "7").check()
    message = str(info.value)
    assert message.startswith("the cuda:7 hardware decoder opens but FFmpeg decoded on the CPU")
    assert "NVIDIA_DRIVER_CAPABILITIES must include video" in message


def test_the_probe_clip_decodes_in_softwares_layout():
    """What the fallback test above compares against: FFmpeg's software H.264 decoder gives
    planar 4:2:0, never the NV12 a device's frames come back in."""
    with av.open(io.BytesIO(hardware_module._probe_clip())) as container:
        formats = {frame.format.name for frame in container.decode(video=0)}
    assert formats == {"yuv420p"}
