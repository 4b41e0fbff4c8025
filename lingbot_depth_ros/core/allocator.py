"""glibc malloc settings for a process that handles a few large buffers per frame: fixed
mmap/trim thresholds keep frame buffers on the heap for reuse, and a long-running process
also uses one arena and trims it periodically (why: docs/internals.md)."""

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
    single_arena: every thread allocates from the main heap (call before any thread starts)."""
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
    """Gives the allocator's free pages back to the kernel every `period_s` (glibc malloc_trim),
    so resident memory follows memory in use; the last call's duration is in `last_ms`."""

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
