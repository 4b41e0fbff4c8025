"""core/threads.py: OpenCV's and every loaded OpenBLAS's worker pool take the setting.

The pools are read back through each library's own getter (found in /proc/self/maps), not
through threadpoolctl, which sets them."""

from __future__ import annotations

import ctypes

import cv2
import numpy as np
import pytest

from lingbot_depth_ros.core.threads import set_math_threads

_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
            "scipy_openblas_get_num_threads")


def loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS copies mapped into this process."""
    with open("/proc/self/maps") as maps:
        paths = {line.rsplit(None, 1)[-1] for line in maps if ".so" in line}
    return sorted(p for p in paths if p.startswith("/") and "openblas" in p.rsplit("/", 1)[-1])


def openblas_threads() -> dict[str, int]:
    found = {}
    for path in loaded_openblas():
        library = ctypes.CDLL(path)
        for name in _GETTERS:
            getter = getattr(library, name, None)
            if getter is not None:
                getter.restype = ctypes.c_int
                found[path] = getter()
                break
    return found


@pytest.fixture
def restore():
    before_cv, before_blas = cv2.getNumThreads(), openblas_threads()
    yield
    for count in set(before_blas.values()):
        set_math_threads(count)  # sets OpenCV too; its own count is restored last
    cv2.setNumThreads(before_cv)


def test_numpy_and_opencv_openblas_are_found():
    np.linalg.solve(np.eye(3), np.ones(3))  # numpy's BLAS is loaded with numpy; be sure
    assert loaded_openblas(), "no OpenBLAS found in /proc/self/maps"


@pytest.mark.parametrize("count", [1, 2])
def test_every_pool_takes_the_count(restore, count):
    applied = set_math_threads(count)
    assert cv2.getNumThreads() == count and applied["opencv"] == count
    blas = openblas_threads()
    assert blas and set(blas.values()) == {count}
    assert len(applied) == 1 + len(blas)


def test_zero_leaves_the_libraries_alone(restore):
    cv2.setNumThreads(2)
    assert set_math_threads(0) == {}
    assert cv2.getNumThreads() == 2


def test_negative_is_an_error():
    with pytest.raises(ValueError, match="math threads"):
        set_math_threads(-1)
