"""Where and how a streaming result was measured, carried by every CSV and JSON result of the
streaming experiments.

Streaming accuracy depends on the machine as much as on the model (a slower device answers
later, so with staler outputs), so a number without its device, thread count, library version,
date and clock kind cannot be compared with another.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

import torch

from ..errors import SettingsError

#: The clock kinds: "real" (wall time of the machine that ran) or "sim" (latencies drawn
#: from a profile, so the result stands for the profile's device, not this one).
CLOCKS = ("real", "sim")


def measured_on(
    device: torch.device | str = "cpu", *, clock: str = "real", profile: str | None = None
) -> dict[str, Any]:
    """Provenance fields of a result.

    Args:
        device: the device the model ran on ("cpu", "cuda", "cuda:1", a torch.device).
        clock: "real" or "sim".
        profile: the latency profile's name for simulated clocks (None for real ones).

    Returns:
        ``device`` (CPU model name, or the CUDA GPU's name), ``threads``
        (torch.get_num_threads()), ``torch`` (version), ``date`` (UTC, ISO 8601, seconds),
        ``clock`` and ``profile``.

    Raises:
        SettingsError: an unknown clock kind or device string.
    """
    if clock not in CLOCKS:
        raise SettingsError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise SettingsError(f"unknown device {device!r} ({error})") from None
    return {
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "clock": clock,
        "profile": profile,
    }


def device_name(device: torch.device) -> str:
    """The CUDA GPU's name, or the CPU's model name (from /proc/cpuinfo where there is one,
    else what the platform module reports)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    return cpu_name()


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, e.g. "AMD EPYC 7B13"; the architecture when nothing names it."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


__all__ = ["CLOCKS", "cpu_name", "device_name", "measured_on"]
