"""tune_cpu_allocator: applied once on glibc, a harmless no-op elsewhere."""

from __future__ import annotations

import ctypes

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
