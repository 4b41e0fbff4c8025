"""ROS-free parts of the node's conventions and health: REP 117 infinities kept through
completion, the frame-id check (node and bag tools alike), unpaired expiry, health levels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lingbot_depth_ros.bag.decode import IMAGE
from lingbot_depth_ros.bag.frames import FrameAssembler, Received
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.depth import Infinities, check_registered, depth_to_metres
from lingbot_depth_ros.core.errors import UnregisteredError
from lingbot_depth_ros.core.frame import RGBDFrame, SourceMask
from lingbot_depth_ros.core.outputs import OutputBuilder
from lingbot_depth_ros.core.pairing import DropCounter, Pair, StampPairer
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros.params import NodeConfig

K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])


def depth_with_infinities() -> np.ndarray:
    yy, xx = np.mgrid[0:48, 0:64]
    depth = (1.0 + 0.01 * xx + 0.005 * yy).astype(np.float32)
    depth[5:10, 5:15] = np.inf
    depth[20:25, 30:40] = -np.inf
    depth[30:40, 40:50] = np.nan
    return depth


def test_infinities_are_found_only_in_float_depth():
    depth = depth_with_infinities()
    found = Infinities.of(depth, "32FC1")
    assert found.too_far.sum() == 50 and found.too_close.sum() == 50
    assert Infinities.of(np.ones((4, 4), np.float32), "32FC1") is None
    assert Infinities.of(np.ones((4, 4), np.uint16), "16UC1") is None


def test_completion_keeps_infinities_and_fills_only_holes():
    raw = depth_with_infinities()
    rgb = np.full((48, 64, 3), 128, np.uint8)
    frame = RGBDFrame(rgb=rgb, depth=depth_to_metres(raw, "32FC1"), K=K)
    result = Infinities.of(raw, "32FC1").restore(create_engine("guided").complete(frame))
    assert result.infinite
    assert np.all(np.isposinf(result.depth[5:10, 5:15])) and np.all(np.isneginf(result.depth[20:25, 30:40]))
    assert np.isinf(result.depth).sum() == 100
    assert np.all(np.isfinite(result.depth[30:40, 40:50]))
    assert np.all(result.source[5:10, 5:15] == SourceMask.INVALID)
    assert np.all(result.source[30:40, 40:50] == SourceMask.FILLED)
    cloud = OutputBuilder(reuse_buffers=True).cloud(result.depth, rgb, K,
                                                    positive_or_nan=not result.infinite)
    xyz = np.frombuffer(cloud.data, np.float32).reshape(48, 64, 4)[..., :3]
    assert np.all(np.isnan(xyz[5:10, 5:15])) and np.all(np.isnan(xyz[20:25, 30:40]))
    assert np.isfinite(xyz).all(axis=-1).sum() == 48 * 64 - 100


def test_frame_ids_must_match_unless_assumed_registered():
    check_registered("a", "a", False)
    check_registered("a", "b", True)
    with pytest.raises(UnregisteredError, match="not the colour frame") as info:
        check_registered("color_frame", "depth_frame", False)
    assert info.value.reason == "unregistered"


def image_msg(array: np.ndarray, encoding: str, frame_id: str, stamp_ns: int = 10**9):
    fields = encode_image(array, encoding)
    sec, nanosec = divmod(stamp_ns, 10**9)
    header = SimpleNamespace(frame_id=frame_id, stamp=SimpleNamespace(sec=sec, nanosec=nanosec))
    return SimpleNamespace(header=header, height=fields.height, width=fields.width,
                           encoding=encoding, is_bigendian=0, step=fields.step,
                           data=bytes(fields.data))


def bag_pair(depth_frame_id: str) -> Pair:
    color = image_msg(np.full((48, 64, 3), 90, np.uint8), "rgb8", "color_frame")
    depth = image_msg(depth_with_infinities(), "32FC1", depth_frame_id)
    return Pair(Received(color, IMAGE, 1), Received(depth, IMAGE, 1), None, 10**9, 10**9)


def test_bag_tools_apply_the_same_conventions():
    """FrameAssembler (bag process, eval, train) checks frame ids and finds the infinities
    exactly as the node does."""
    with pytest.raises(UnregisteredError):
        FrameAssembler(NodeConfig.from_values({})).assemble(bag_pair("depth_frame"))
    assembled = FrameAssembler(NodeConfig.from_values({"assume_registered": True})).assemble(
        bag_pair("depth_frame"))
    expected = Infinities.of(depth_with_infinities(), "32FC1")
    np.testing.assert_array_equal(assembled.infinities.too_far, expected.too_far)
    np.testing.assert_array_equal(assembled.infinities.too_close, expected.too_close)
    assert np.isnan(assembled.frame.depth[5:10, 5:15]).all()  # no data for the engine


def test_expire_counts_images_without_partner_as_unpaired():
    now = [0]
    drops = DropCounter()
    pairer = StampPairer(0.02, 10, drops, clock_ns=lambda: now[0])
    pairer.add_color(1_000, "c1")
    now[0] = 500_000_000
    pairer.add_depth(900_000_000, "d2")  # too far from c1 to pair
    now[0] = 1_100_000_000
    assert pairer.expire(1_000_000_000) == 1  # c1 waited 1.1 s, d2 0.6 s
    assert pairer.pending == 1 and drops.snapshot() == {"unpaired": 1}
    with pytest.raises(ValueError):
        StampPairer(0.02).expire(1)


def test_health_levels():
    pytest.importorskip("diagnostic_msgs", reason="diagnostic_msgs (ROS 2 wheels) not installed")
    from diagnostic_msgs.msg import DiagnosticStatus
    from lingbot_depth_ros.ros.diagnostics import NodeStats, RecentDrops, health

    stats = NodeStats()
    assert health(stats, {}, 0, 3.0, now=0.0).level == DiagnosticStatus.WARN  # no input yet
    stats.first_input_at = stats.last_input_at = 10.0
    stats.received["color"] = 1
    assert health(stats, {}, 1, 3.0, now=11.0).level == DiagnosticStatus.OK  # just started
    stats.last_input_at = 14.0
    status = health(stats, {"unregistered": 8, "superseded": 2}, 0, 3.0, now=14.5)
    assert status.level == DiagnosticStatus.ERROR
    assert "unregistered (8 of 10 images)" in status.problems[0]
    stats.last_published_at = 14.2
    assert health(stats, {}, 0, 3.0, now=14.5).level == DiagnosticStatus.OK
    assert health(stats, {}, 0, 3.0, now=18.0).level == DiagnosticStatus.STALE
    stats.fallback_reason = "engine 'torch' failed to load"
    status = health(stats, {}, 0, 3.0, now=14.5)
    assert status.level == DiagnosticStatus.WARN and "fell back" in status.problems[0]

    window = RecentDrops(2.0)
    assert window.update({"late": 1}, now=0.0) == {"late": 1}
    assert window.update({"late": 3}, now=1.0) == {"late": 3}
    assert window.update({"late": 4, "unpaired": 2}, now=2.5) == {"late": 3, "unpaired": 2}
