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


def test_heap_trimmer_trims_once_per_period():
    now = [100.0]
    trimmer = allocator.HeapTrimmer(5.0, clock=lambda: now[0])
    if not trimmer.active:
        pytest.skip("this C library has no malloc_trim")
    calls = []
    for t in (100.0, 104.9, 105.0, 106.0, 109.9, 110.5, 200.0):
        now[0] = t
        if trimmer.maybe_trim():
            calls.append(t)
    assert calls == [105.0, 110.5, 200.0] and trimmer.trims == 3
    assert trimmer.last_ms >= 0


def test_heap_trimmer_is_off_at_period_zero():
    trimmer = allocator.HeapTrimmer(0.0, clock=lambda: 1e9)
    assert not trimmer.active and not trimmer.maybe_trim() and trimmer.trims == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_free_pages_between_live_blocks():
    # With the heap kept for reuse (tuned), freeing every other 300 KB block leaves 60 MB of
    # holes between live blocks: resident, and invisible to the heap-top trim glibc does on
    # its own. One trim hands them back; memory in use is unchanged.
    code = """
import sys, numpy as np
from lingbot_depth_ros.core import allocator
allocator.tune_for_frame_buffers()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
blocks = [np.ones(300_000, np.uint8) for _ in range(400)]
del blocks[::2]
before, in_use = rss_mb(), allocator.heap_usage()[0]
trimmer = allocator.HeapTrimmer(1e-9)
assert trimmer.maybe_trim()
print(before - rss_mb(), (allocator.heap_usage()[0] - in_use) / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    released_mb, in_use_change_mb = map(float, out.stdout.split())
    assert released_mb > 45, out.stdout  # 200 holes of 300 KB = 57 MB
    assert abs(in_use_change_mb) < 1, out.stdout


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_single_arena_keeps_every_thread_on_the_main_heap():
    # malloc_trim cannot shrink the free top of a thread's own arena; the node asks for one.
    code = """
import ctypes, sys, tempfile, threading, numpy as np
from lingbot_depth_ros.core import allocator
assert allocator.tune_for_frame_buffers(single_arena=sys.argv[1] == "single")
barrier, held = threading.Barrier(5), []
def work():
    held.append(np.ones(1 << 20, np.uint8))
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
barrier.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
barrier.wait()
print(open(path).read().count("<heap nr="))
"""
    arenas = {mode: int(subprocess.run([sys.executable, "-c", code, mode], check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "single")}
    assert arenas["single"] == 1 and arenas["default"] > 1, arenas
