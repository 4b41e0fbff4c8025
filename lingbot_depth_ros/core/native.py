"""Native libraries already loaded into this process, found in /proc/self/maps.

Reaching a library through ctypes by the path it was loaded from gives the very copy the
process uses (rclpy's rcl, numpy's or OpenCV's OpenBLAS), not another one found on the path.
"""

from __future__ import annotations


def loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process, in map order, each once
    (empty where /proc is not available)."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if path.startswith("/") and ".so" in path and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths
