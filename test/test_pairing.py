"""Stamp pairing (core/pairing.py): what a time jump is, and a stream that lags the other."""

from __future__ import annotations

from lingbot_depth_ros.core.pairing import DropCounter, StampPairer

MS = 1_000_000
T0 = 1_700_000_000 * 1000 * MS


def test_a_stream_lagging_the_other_by_more_than_a_second_still_pairs():
    """Depth arrives on time, colour 1.5 s late (a reliable transport held it back for a
    repair, then released it at once): every colour finds its waiting depth, none is
    counted as a time jump."""
    drops = DropCounter()
    pairer = StampPairer(slop_s=0.02, queue_size=30, drops=drops)
    stamps = [T0 + i * 66 * MS for i in range(25)]  # 15 Hz, 1.6 s
    for s in stamps:
        assert pairer.add_depth(s, f"d{s}") is None
    pairs = [pairer.add_color(s, f"c{s}") for s in stamps]
    assert all(p is not None for p in pairs), drops.snapshot()
    assert [p.color_stamp_ns for p in pairs] == stamps
    assert drops.snapshot() == {}


def test_a_stream_going_back_on_itself_is_a_time_jump():
    """A bag loop: both streams restart a minute earlier; what waited is dropped as
    time_jump and pairing starts over."""
    drops = DropCounter()
    pairer = StampPairer(slop_s=0.02, queue_size=30, drops=drops)
    for i in range(5):
        assert pairer.add_color(T0 + i * 33 * MS, "c") is None or True
        pairer.add_depth(T0 + i * 33 * MS, "d")
    pairer.add_color(T0 + 5 * 33 * MS, "c-waiting")  # its depth never comes before the loop
    back = T0 - 60_000 * MS
    assert pairer.add_color(back, "c0") is None
    assert drops.snapshot() == {"time_jump": 1}
    assert pairer.add_depth(back, "d0") is not None
