"""Latency-aware ("streaming") accuracy: score each annotated frame with the latest output that
had finished when the frame arrived, under real or simulated clocks and online schedulers."""

from __future__ import annotations

from .clocks import LinearCost, MeasuredCost, ProfileCost, RealClock, SimulatedClock
from .manifest import Manifest, ManifestError, read_manifest, write_manifest
from .metrics import StreamingMetric, register_streaming_scorer, score_streams, streaming_metric
from .online import run_online, run_online_batch
from .pairing import Pair, pair_stream, pair_streams
from .profiles import LatencyProfile, ProfileError, bundled_profile, load_profile, save_profile
from .provenance import measured_on
from .records import TimedOutput, arrival_times
from .schedulers import SCHEDULERS, FitInterval, Scheduler, make_scheduler

__all__ = [
    "SCHEDULERS",
    "FitInterval",
    "LatencyProfile",
    "LinearCost",
    "Manifest",
    "ManifestError",
    "MeasuredCost",
    "Pair",
    "ProfileCost",
    "ProfileError",
    "RealClock",
    "Scheduler",
    "SimulatedClock",
    "StreamingMetric",
    "TimedOutput",
    "arrival_times",
    "bundled_profile",
    "load_profile",
    "make_scheduler",
    "measured_on",
    "pair_stream",
    "pair_streams",
    "read_manifest",
    "register_streaming_scorer",
    "run_online",
    "run_online_batch",
    "save_profile",
    "score_streams",
    "streaming_metric",
    "write_manifest",
]
