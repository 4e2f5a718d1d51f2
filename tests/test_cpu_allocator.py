"""tune_cpu_allocator: applied once on glibc, a harmless no-op elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import time

import pytest

import streamdeq.cpu_allocator as runtime


@pytest.fixture(autouse=True)
def _fresh_lookup():
    """Each test looks glibc up again (the lookup is cached per process)."""
    runtime._glibc.cache_clear()
    yield
    runtime._glibc.cache_clear()


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


#: Tuned like serve, fills 200 blocks of 1 MiB, frees every other one (100 holes the kept
#: blocks keep apart, below the heap's top: no trim threshold gives them back), then releases;
#: prints RSS before and after in MiB.
_HOLES_PROBE = """
import json, numpy as np
import streamdeq.cpu_allocator as runtime

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

applied = runtime.tune_cpu_allocator()
blocks = [np.ones(2**20, np.uint8) for _ in range(200)]
del blocks[::2]
before = rss()
released = runtime.release_free_memory()
print(json.dumps({"applied": applied, "released": released, "before": before, "after": rss()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_releasing_gives_back_the_pages_of_holes_inside_the_heap():
    """What serve's releaser is for: with the tuning, freed blocks stay resident where they
    were; released, their pages leave RSS (the blocks kept between them stay)."""
    done = subprocess.run(
        [sys.executable, "-c", _HOLES_PROBE], capture_output=True, text=True, check=True
    )
    probe = json.loads(done.stdout.splitlines()[-1])
    if not probe["applied"]:
        pytest.skip(f"glibc's malloc is not the process's allocator here ({probe})")
    assert probe["released"]
    assert probe["before"] - probe["after"] > 80, probe  # of the 100 MiB of holes


def test_off_glibc_nothing_is_released_and_no_thread_starts(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.release_free_memory() is False
    releaser = runtime.MemoryReleaser(interval=0.01)
    assert releaser.start() is False
    releaser.stop()
    assert releaser.releases == 0


def test_the_releaser_releases_every_interval_until_stopped(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "_glibc", lambda: object())
    monkeypatch.setattr(runtime, "release_free_memory", lambda: calls.append(1) or True)
    releaser = runtime.MemoryReleaser(interval=0.01)
    assert releaser.start()
    deadline = time.monotonic() + 5
    while releaser.releases < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    releaser.stop()
    stopped_at = releaser.releases
    time.sleep(0.05)
    assert stopped_at >= 3 and releaser.releases == stopped_at == len(calls)


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_the_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match="interval"):
        runtime.MemoryReleaser(interval=interval)
