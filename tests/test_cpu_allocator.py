"""tune_cpu_allocator: applied once on glibc, a harmless no-op elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

import pytest

import streamdeq.cpu_allocator as runtime


def test_tuning_is_applied_once_and_reports_the_same_answer(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    calls = []
    real_apply = runtime._apply
    monkeypatch.setattr(runtime, "_apply", lambda: calls.append(1) or real_apply())
    first = runtime.tune_cpu_allocator()
    assert runtime.tune_cpu_allocator() is first
    assert len(calls) == 1


def test_without_mallopt_nothing_is_changed_and_false_is_returned(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "linux")

    def no_libc(*args, **kwargs):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert runtime._apply() is False


def test_off_linux_nothing_is_attempted(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime._apply() is False


#: Allocates and frees an 80 MiB tensor (above glibc's largest mmap threshold) three times;
#: prints whether tuning took effect, how many bytes of mapped chunks the live buffer added, and
#: the fewest page faults one use of it cost.
_REUSE_PROBE = """
import ctypes, ctypes.util, json, resource, sys, torch
import streamdeq.cpu_allocator as runtime
applied = runtime.tune_cpu_allocator() if sys.argv[1] == "tuned" else None

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2

def one_use():
    mapped_before = libc.mallinfo2().hblkhd
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = torch.empty(80 * 2**20, dtype=torch.uint8)
    buffer.fill_(1)
    mapped = libc.mallinfo2().hblkhd - mapped_before
    del buffer
    return mapped, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before

uses = [one_use() for _ in range(4)][1:]
print(json.dumps({"applied": applied, "mapped": max(m for m, _ in uses),
                  "faults": min(f for _, f in uses)}))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _REUSE_PROBE, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_once_tuned_a_buffer_larger_than_any_mmap_threshold_comes_from_the_heap():
    """The head's and XL's buffers exceed 32 MiB: untuned, glibc serves each with a fresh
    mapping (zero-filled pages on every use); tuned, from the heap, where a freed one is reused.

    Whether reusing heap pages then costs no faults is the kernel's business, so the benchmark
    measures that (``bench latency``'s faults_per_frame) rather than this test: ~0 a frame on this
    project's machines, ~90,000 on SMALL before the change."""
    untuned, tuned = _probe("default"), _probe("tuned")
    if untuned["mapped"] < 80 * 2**20:
        pytest.skip(f"this allocator does not map large blocks ({untuned})")
    if not tuned["applied"]:
        pytest.skip(f"glibc's malloc is not the process's allocator here ({tuned})")
    assert tuned["mapped"] == 0, (tuned, untuned)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_tuning_is_declined_when_another_malloc_serves_the_process():
    """With jemalloc or tcmalloc preloaded, glibc's mallopt would answer 1 and change nothing."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    assert runtime._serves_this_process(libc)

    class PreloadedElsewhere:
        malloc = libc.free  # any function other than the process's malloc

    assert not runtime._serves_this_process(PreloadedElsewhere())
