"""glibc malloc tuning for frame-sized buffers (core/allocator.py)."""

import platform
import subprocess
import sys

import pytest

from lingbot_depth_ros.core import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_frame_buffers_are_reused_instead_of_faulted_in_again():
    # In a fresh interpreter, a frame's worth of buffers (a 4.9 MB XYZRGB cloud, depth, mask,
    # message copies: ~20 MB) is allocated and freed per "frame". By default glibc hands the
    # freed heap top back to the kernel and faults it in again next frame; tuned, it keeps it.
    code = """
import resource, sys, numpy as np
from lingbot_depth_ros.core.allocator import tune_for_frame_buffers
if sys.argv[1] == "tuned":
    assert tune_for_frame_buffers() and tune_for_frame_buffers()
def frame():
    buffers = [np.ones(640 * 480 * 16, np.uint8) for _ in range(4)]
    del buffers
for _ in range(5):
    frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "tuned")}
    assert faults["default"] > 50 * 1000  # thousands of 4 KiB pages per frame
    assert faults["tuned"] < faults["default"] / 20, faults


def test_tuning_is_harmless_to_call_again():
    first = allocator.tune_for_frame_buffers()
    assert allocator.tune_for_frame_buffers() == first
