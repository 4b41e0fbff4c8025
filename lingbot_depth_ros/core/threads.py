"""Worker-thread pools of OpenCV and the BLAS libraries, set per process: their spinning idle
workers take CPU the pipeline's own threads need (docs/internals.md)."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# OpenBLAS's own (setter, getter) pairs: plain builds, and the scipy-openblas copy numpy's
# wheels bundle (64-bit integers, prefixed symbols).
_OPENBLAS_CALLS = (("openblas_set_num_threads", "openblas_get_num_threads"),
                   ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                   ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"))
_told_no_threadpoolctl = False


def set_math_threads(count: int) -> dict[str, int]:
    """Give OpenCV and every loaded BLAS `count` threads (0: leave their defaults); returns
    library -> threads, for the log."""
    if count < 0:
        raise ValueError(f"math threads must be >= 0, got {count}")
    applied: dict[str, int] = {}
    if count == 0:
        return applied
    import cv2
    import numpy  # noqa: F401 - loads numpy's BLAS so that it is found below

    cv2.setNumThreads(count)
    applied["opencv"] = cv2.getNumThreads()
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        # Optional: rosdep has no key for it (package.xml), so a ROS install may lack it.
        _tell_no_threadpoolctl()
        applied.update(set_openblas_threads(count))
    else:
        threadpool_limits(limits=count, user_api="blas")  # stays in force (not used as a context)
        for pool in threadpool_info():
            if pool["user_api"] == "blas":
                applied[pool["filepath"].rsplit("/", 1)[-1]] = pool["num_threads"]
    log.debug("math library threads: %s", applied)
    return applied


def set_openblas_threads(count: int) -> dict[str, int]:
    """Without threadpoolctl: call the thread setter of every OpenBLAS mapped into this process
    (Linux's /proc/self/maps); other BLAS builds (MKL, BLIS) keep their defaults."""
    applied: dict[str, int] = {}
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.rsplit(None, 1)[-1] for line in maps if ".so" in line}
    except OSError:
        return applied
    for path in sorted(p for p in paths if p.startswith("/") and "blas" in p.lower()):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_CALLS:
            setter, getter = getattr(library, set_name, None), getattr(library, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                setter(count)
                applied[path.rsplit("/", 1)[-1]] = getter()
                break
    return applied


def _tell_no_threadpoolctl() -> None:
    global _told_no_threadpoolctl
    if not _told_no_threadpoolctl:
        _told_no_threadpoolctl = True
        log.info("threadpoolctl is not installed: OpenBLAS threads are set through its own "
                 "calls, other BLAS builds keep their defaults (set OMP_NUM_THREADS before the "
                 "start, or install threadpoolctl: pip, or apt's python3-threadpoolctl)")
