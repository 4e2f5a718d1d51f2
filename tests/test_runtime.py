"""tune_cpu_allocator: applied once on glibc, a harmless no-op elsewhere."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

import streamdeq.runtime as runtime


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


_REUSE_PROBE = """
import resource, sys, torch
import streamdeq.runtime as runtime
if sys.argv[1] == "tuned":
    assert runtime.tune_cpu_allocator()
def faults_of_one_use():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(80 * 2**20, dtype=torch.uint8).fill_(1)  # above glibc's largest mmap threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_use()
print(min(faults_of_one_use() for _ in range(3)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_a_freed_buffer_larger_than_any_mmap_threshold_is_reused_without_page_faults():
    """The head's and XL's buffers exceed 32 MiB: tuned, using one again costs no fresh pages
    (untuned, glibc maps and zero-fills all 20,480 pages of it every time)."""

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _REUSE_PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout.split()[-1])

    untuned, tuned = faults("default"), faults("tuned")
    if untuned < 10_000:
        pytest.skip(f"this libc does not map large blocks afresh ({untuned} faults untuned)")
    assert tuned < 1_000, (tuned, untuned)
