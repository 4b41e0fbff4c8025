"""glibc malloc settings for a process that handles a few large buffers per frame.

By default glibc serves blocks above a moving threshold (128 KiB, growing up to 32 MiB as
such blocks are freed) with fresh mmap pages and hands freed heap tops back to the kernel.
An RGB-D pipeline allocates and frees the same 0.3-5 MB images, clouds and messages every
frame, so each frame pays page faults on new pages (kernel time per frame: see
docs/benchmarks.md) and RSS creeps up in steps as the threshold moves. Fixing both thresholds
keeps those buffers on the heap and reuses them: steady RSS after warm-up, fewer faults.

A long-running process (the node) also uses one arena and trims it periodically
(HeapTrimmer): see `tune_for_frame_buffers(single_arena=True)`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: blocks below this come from the (reused) heap; frame buffers are far smaller
MMAP_THRESHOLD = 64 * 1024 * 1024
#: free heap above this is returned to the kernel; a few frames' worth is kept for reuse
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied = False


def tune_for_frame_buffers(single_arena: bool = False) -> bool:
    """Apply the settings once per process; False (and nothing changed) off glibc.

    single_arena: every thread allocates from the main heap (call before any thread starts:
    importing rclpy already creates two arenas). glibc otherwise gives threads arenas of
    their own, and malloc_trim cannot shrink the free top of those, so the node's resident
    memory crept up with three arenas and stays flat with one (docs/benchmarks.md, "Free
    space in per-thread malloc arenas")."""
    global _applied
    if _applied:
        return True
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if single_arena:
        ok = ok and bool(mallopt(_M_ARENA_MAX, 1))
    _applied = ok
    log.debug("glibc malloc tuned for frame buffers: %s", ok)
    return ok


@functools.lru_cache(maxsize=None)
def _libc_function(name: str):
    """A libc function through ctypes, or None off glibc (musl has no mallopt/malloc_trim).
    Cached: each is looked up once (find_library runs ldconfig)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def heap_usage() -> tuple[int, int] | None:
    """(bytes in use, bytes free) over every malloc arena and mmapped block (glibc >= 2.33
    mallinfo2), or None where unavailable. Free bytes are space the allocator holds for reuse."""
    mallinfo2 = _libc_function("mallinfo2")
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd, info.fordblks


class HeapTrimmer:
    """Gives the allocator's free pages back to the kernel every `period_s` (glibc malloc_trim).

    With the heap kept for reuse (above), the blocks a frame frees serve the next frame, but
    free space between blocks still grows as blocks of a dozen sizes are freed in varying
    order by several threads, and every page of it once touched stays resident.
    malloc_trim(0) releases the whole free pages of every arena (madvise) and the main
    heap's free top, so resident memory follows memory in use. It costs one call per period
    (timed in `last_ms`; figures in docs/benchmarks.md) plus page faults on released pages the next
    frames use again; at 5 s and 30 Hz that is one frame in 150. The node trims between
    frames, and from its diagnostics timer while no frame is in flight, so memory goes back
    once a stream stops."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._trim = _libc_function("malloc_trim") if period_s > 0 else None
        if self._trim is not None:
            self._trim.argtypes, self._trim.restype = (ctypes.c_size_t,), ctypes.c_int
        self._next = clock() + period_s
        self._lock = threading.Lock()
        self.trims = 0
        self.last_ms = 0.0

    @property
    def active(self) -> bool:
        """False where disabled (period 0) or where the C library has no malloc_trim."""
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim if the period has passed since the last trim; True if it trimmed. Safe to
        call from several threads (one trims, the others return False)."""
        if self._trim is None or self._clock() < self._next or not self._lock.acquire(blocking=False):
            return False
        try:
            now = self._clock()
            if now < self._next:
                return False
            started = time.perf_counter()
            self._trim(0)
            self.last_ms = (time.perf_counter() - started) * 1e3
            self.trims += 1
            self._next = now + self.period_s
            return True
        finally:
            self._lock.release()
