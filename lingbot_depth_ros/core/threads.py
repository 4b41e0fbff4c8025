"""Worker-thread pools of OpenCV and OpenBLAS, set per process.

Both libraries run a pool of worker threads (one per core by default) whose idle workers spin
on sched_yield for a while after each parallel call. The node and `bag process` already keep
the cores busy with their own pipeline threads (receive, engine, outputs, write), so on a small
machine those spinning workers take CPU the pipeline needs. Measured on the 2-core development
machine, 120 frames of `bag process` with `guided`: the engine alone 16.4 -> 14.7 ms of CPU per
frame at the same wall time, the whole run 28.9 -> 26.1 ms of CPU per frame, with one thread
each. OpenCV sets its pool at run time; each OpenBLAS copy loaded into the process (numpy's,
OpenCV's) is found in /proc/self/maps and set through its own entry point.
"""

from __future__ import annotations

import ctypes
import logging

from .native import loaded_libraries

log = logging.getLogger(__name__)

#: entry points that set an OpenBLAS pool's size, by build (reference, numpy's scipy-openblas)
_OPENBLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads")


def loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries loaded into this process."""
    return [path for path in loaded_libraries() if "openblas" in path.rsplit("/", 1)[-1]]


def set_math_threads(count: int) -> dict[str, int]:
    """Give OpenCV and every loaded OpenBLAS `count` threads (0: leave their defaults).

    Returns what was set, library -> threads, for the log."""
    if count < 0:
        raise ValueError(f"math threads must be >= 0, got {count}")
    applied: dict[str, int] = {}
    if count == 0:
        return applied
    import cv2
    import numpy  # noqa: F401 - loads numpy's OpenBLAS so that it is found below

    cv2.setNumThreads(count)
    applied["opencv"] = cv2.getNumThreads()
    for path in loaded_openblas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _OPENBLAS_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes, setter.restype = (ctypes.c_int,), None
                setter(count)
                applied[path.rsplit("/", 1)[-1]] = count
                break
    log.debug("math library threads: %s", applied)
    return applied
