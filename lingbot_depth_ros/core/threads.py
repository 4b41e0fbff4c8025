"""Worker-thread pools of OpenCV and the BLAS libraries, set per process: their spinning idle
workers take CPU the pipeline's own threads need (docs/internals.md)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def set_math_threads(count: int) -> dict[str, int]:
    """Give OpenCV and every loaded BLAS `count` threads (0: leave their defaults); returns
    library -> threads, for the log."""
    if count < 0:
        raise ValueError(f"math threads must be >= 0, got {count}")
    applied: dict[str, int] = {}
    if count == 0:
        return applied
    import cv2
    import numpy  # noqa: F401 - loads numpy's BLAS so that threadpoolctl finds it
    from threadpoolctl import threadpool_info, threadpool_limits

    cv2.setNumThreads(count)
    applied["opencv"] = cv2.getNumThreads()
    threadpool_limits(limits=count, user_api="blas")  # stays in force (not used as a context)
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            applied[pool["filepath"].rsplit("/", 1)[-1]] = pool["num_threads"]
    log.debug("math library threads: %s", applied)
    return applied
