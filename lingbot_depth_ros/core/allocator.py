"""glibc malloc settings for a process that handles a few large buffers per frame.

By default glibc serves blocks above a moving threshold (128 KiB, growing up to 32 MiB as
such blocks are freed) with fresh mmap pages and hands freed heap tops back to the kernel.
An RGB-D pipeline allocates and frees the same 0.3-5 MB images, clouds and messages every
frame, so each frame pays page faults on new pages (measured: 3-6 ms of kernel time per
640x480 frame) and RSS creeps up in steps as the threshold moves. Fixing both thresholds
keeps those buffers on the heap and reuses them: steady RSS after warm-up, fewer faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: blocks below this come from the (reused) heap; frame buffers are far smaller
MMAP_THRESHOLD = 64 * 1024 * 1024
#: free heap above this is returned to the kernel; a few frames' worth is kept for reuse
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied = False


def tune_for_frame_buffers() -> bool:
    """Apply the settings once per process; False (and nothing changed) off glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _applied = ok
    log.debug("glibc malloc tuned for frame buffers: %s", ok)
    return ok
