"""Worker-thread pools of OpenCV and the BLAS libraries, set per process.

Both run a pool of worker threads (one per core by default) whose idle workers spin on
sched_yield for a while after each parallel call. The node and `bag process` already keep the
cores busy with their own pipeline threads (receive, engine, outputs, write), so on a small
machine those spinning workers take CPU the pipeline needs (docs/benchmarks.md has the
figures). OpenCV sets its pool at run time; every BLAS loaded into the process (numpy's
OpenBLAS, the copy OpenCV bundles) is set through threadpoolctl. OpenMP pools (PyTorch's) are
left alone: the torch engine sizes those itself.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def set_math_threads(count: int) -> dict[str, int]:
    """Give OpenCV and every loaded BLAS `count` threads (0: leave their defaults).

    Returns what was set, library -> threads, for the log."""
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
