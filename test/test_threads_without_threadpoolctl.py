"""core/threads.py without threadpoolctl (rosdep has no key for it, so a ROS install may lack
it): OpenCV and every loaded OpenBLAS still take the count, read back through OpenBLAS's own
getters, and the node logs once why."""

from __future__ import annotations

import logging
import sys

import cv2
import pytest
from test_threads import openblas_threads, restore  # noqa: F401 - restore is a fixture

from lingbot_depth_ros.core import threads


@pytest.fixture
def no_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import raises ImportError
    monkeypatch.setattr(threads, "_told_no_threadpoolctl", False)


@pytest.mark.parametrize("count", [1, 2])
def test_every_openblas_takes_the_count_without_threadpoolctl(restore, no_threadpoolctl,  # noqa: F811
                                                              count):
    applied = threads.set_math_threads(count)
    assert cv2.getNumThreads() == count and applied["opencv"] == count
    blas = openblas_threads()
    assert blas and set(blas.values()) == {count}
    assert {name: n for name, n in applied.items() if name != "opencv"} == {
        path.rsplit("/", 1)[-1]: count for path in blas}


def test_the_missing_module_is_logged_once(restore, no_threadpoolctl, caplog):  # noqa: F811
    with caplog.at_level(logging.INFO, logger=threads.__name__):
        threads.set_math_threads(1)
        threads.set_math_threads(2)
    told = [r for r in caplog.records if "threadpoolctl is not installed" in r.getMessage()]
    assert len(told) == 1
