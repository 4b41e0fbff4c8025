"""core/pairing.StampPairer against upstream message_filters.ApproximateTimeSynchronizer on the
same stamp sequences: equal pairs on ordinary streams (loss, jitter, colour and depth
arriving in either order); the two deliberate differences (|dt| == slop; a late message) asserted
here and described in docs/upstream_tier.md."""

from __future__ import annotations

import random

import pytest

message_filters = pytest.importorskip(
    "message_filters", reason="message_filters is not installed: no ROS 2 install and no "
                              "../shared/ros2-upstream (./run.sh installs it)")

from sensor_msgs.msg import Image  # noqa: E402

from lingbot_depth_ros.core.pairing import DropCounter, StampPairer  # noqa: E402
from lingbot_depth_ros.ros.messages import make_header  # noqa: E402

SLOP_S = 0.02
PERIOD_NS = 33_333_333
QUEUE = 10


class Both:
    """The same arrivals into StampPairer and ApproximateTimeSynchronizer."""

    def __init__(self) -> None:
        self.drops = DropCounter()
        self.pairer = StampPairer(SLOP_S, QUEUE, self.drops)
        self.color_in, self.depth_in = message_filters.SimpleFilter(), message_filters.SimpleFilter()
        sync = message_filters.ApproximateTimeSynchronizer([self.color_in, self.depth_in], QUEUE, SLOP_S)
        self.upstream: list[tuple[int, int]] = []
        sync.registerCallback(lambda c, d: self.upstream.append((stamp_of(c), stamp_of(d))))
        self.ours: list[tuple[int, int]] = []

    def arrive(self, stream: str, stamp_ns: int) -> None:
        msg = Image(header=make_header(stamp_ns, "camera_color_optical_frame"))
        add = self.pairer.add_color if stream == "color" else self.pairer.add_depth
        pair = add(stamp_ns, msg)
        if pair is not None:
            self.ours.append((pair.color_stamp_ns, pair.depth_stamp_ns))
        (self.color_in if stream == "color" else self.depth_in).signalMessage(msg)


def stamp_of(msg: Image) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def ordinary_arrivals(seed: int, frames: int = 1600, loss: float = 0.05) -> list[tuple[str, int]]:
    """Colour and depth of one camera at 30 Hz: stamps jittered by up to 2 ms, 5 % of each
    stream lost, each depth arriving up to half a frame before or after its colour (so the
    streams interleave either way; each stream stays in order, as one DDS topic does)."""
    rng = random.Random(seed)
    arrivals = []
    for i in range(frames):
        base = 10**18 + i * PERIOD_NS
        if rng.random() >= loss:
            arrivals.append((float(i), "color", base + rng.randint(-2_000_000, 2_000_000)))
        if rng.random() >= loss:
            arrivals.append((i + rng.uniform(-0.45, 0.45), "depth",
                             base + rng.randint(-2_000_000, 2_000_000)))
    return [(stream, stamp) for _, stream, stamp in sorted(arrivals)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equal_pairs_on_ordinary_streams(seed):
    both = Both()
    for stream, stamp in ordinary_arrivals(seed):
        both.arrive(stream, stamp)
    assert len(both.ours) > 1400
    assert both.ours == both.upstream
    assert both.drops.snapshot().get("late", 0) == 0


def test_difference_dt_equal_to_slop_pairs_here_only():
    both = Both()
    t = 10**18
    slop_ns = int(SLOP_S * 1e9)
    both.arrive("color", t)
    both.arrive("depth", t + slop_ns)
    assert both.ours == [(t, t + slop_ns)]  # the project: |dt| <= slop pairs
    assert both.upstream == []              # upstream: only |dt| < slop


def test_difference_late_message_is_dropped_here_emitted_out_of_order_upstream():
    both = Both()
    t0, t1 = 10**18, 10**18 + PERIOD_NS
    both.arrive("color", t0)   # its depth is delayed
    both.arrive("color", t1)
    both.arrive("depth", t1)   # pair t1
    both.arrive("depth", t0)   # the late depth
    assert both.ours == [(t1, t1)]
    assert both.drops.snapshot() == {"unpaired": 1, "late": 1}  # colour t0, depth t0
    assert both.upstream == [(t1, t1), (t0, t0)]  # an older pair after a newer one
