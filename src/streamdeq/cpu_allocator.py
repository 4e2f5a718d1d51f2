"""Process-level tuning for CPU inference: keep large tensor buffers in the heap.

glibc serves allocations above its mmap threshold with fresh ``mmap`` pages and hands freed heap
memory back to the kernel above its trim threshold. A solver iteration on an MDEQ allocates and
frees the same multi-megabyte activations again and again, so with the defaults every
iteration pays page faults and zero-filling for memory it just released. Raising both
thresholds keeps those buffers in the process: one application of f on Cityscapes-SMALL at
512x1024 (2 threads) went from ~138 ms to ~110 ms median in interleaved runs on this project's
CPU machine.

The mmap threshold cannot go above 32 MiB, and the biggest buffers of a frame are larger: the
head's concatenation of upsampled branches (SMALL at 512x1024: 63 MB, XL: 173 MB) and XL's
expanded residual-block activations (58 MB). Those were still mapped and unmapped on every use,
~90,000 page faults a frame on SMALL and ~450,000 on XL at M = 2. So mmap is also switched off
for the heap (glibc still maps memory when the heap cannot grow): faults per frame drop to
about zero, and a StreamDEQ frame at M = 2, 512x1024, 2 threads went from ~610 to ~390 ms on
SMALL and from ~3,400 to ~2,500 ms on XL (alternating processes; peak resident size within 4 %).
Over 600 frames alternating between two frame sizes the resident size stayed flat.

The cost is that freed memory stays mapped (the resident size does not shrink after a peak),
which is what a long-running stream wants anyway. A long-running service with many threads
needs one more thing: frees leave holes in the heap, and a large block that fits no hole takes
new heap, so its resident size creeps in steps while the memory in use stays flat.
:class:`MemoryReleaser` hands the pages of those holes back every minute
(:func:`release_free_memory`); ``streamdeq serve`` runs one.

This changes the whole process, so the library never does it on import: the ``streamdeq``
command calls :func:`tune_cpu_allocator` at start, and programs embedding the library may call
it themselves. It does nothing off glibc (macOS, Windows, musl) or when another malloc is
preloaded in its place (jemalloc, tcmalloc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading

#: mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

#: Seconds between two hand-backs of free heap pages by a :class:`MemoryReleaser`.
RELEASE_EVERY_S = 60.0

#: glibc's largest allowed mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_applied: bool | None = None


def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are in effect."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def cpu_allocator_tuned() -> bool:
    """Whether :func:`tune_cpu_allocator` has run in this process and took effect (benchmarks
    record it: CPU timings with and without it differ by up to a third)."""
    return bool(_applied)


def release_free_memory() -> bool:
    """Hand the pages of free heap memory back to the kernel; True if it was done.

    glibc's ``malloc_trim(0)`` releases every whole free page inside the heaps of all arenas,
    not only their tops. Why: with the thresholds above freed memory stays resident, and in a
    long-running process with many threads (a service decoding dozens of cameras) frees leave
    holes that a later large block does not fit, so the heap grows in steps and RSS creeps
    while the memory in use is flat. Released, the holes cost RSS nothing until they are used
    again; each page used again costs one page fault, so this is for every minute or so, not
    every frame. Does nothing off glibc or under another preloaded malloc."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        trim = libc.malloc_trim
    except AttributeError:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    trim(0)
    return True


class MemoryReleaser:
    """A daemon thread calling :func:`release_free_memory` every ``interval`` seconds, for a
    process that runs for hours (``streamdeq serve``)."""

    def __init__(self, interval: float = RELEASE_EVERY_S) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self.releases = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start releasing; False (and no thread) where there is nothing to release with."""
        if _glibc() is None:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="memory releaser", daemon=True)
            self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if release_free_memory():
                self.releases += 1


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, when it is the allocator this process uses; None elsewhere. Looked up once:
    ``find_library`` runs ``ldconfig`` in a subprocess."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018  (musl has no mallopt: not glibc)
    except (OSError, AttributeError):
        return None
    return libc if _serves_this_process(libc) else None


def _apply() -> bool:
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    ok_max = mallopt(_M_MMAP_MAX, 0) == 1  # no mmap for chunks above the threshold either
    return ok_mmap and ok_trim and ok_max


def _serves_this_process(libc: ctypes.CDLL) -> bool:
    """Whether the process's ``malloc`` is this libc's: with jemalloc or tcmalloc preloaded,
    glibc's mallopt still answers 1 but tunes an allocator nobody uses."""
    try:
        ours = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
        theirs = ctypes.cast(libc.malloc, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return False
    return ours is not None and ours == theirs
