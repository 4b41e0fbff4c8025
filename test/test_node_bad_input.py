"""Bad input over real DDS: each case is a counted drop (or handled), and the node keeps
publishing good frames afterwards."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rclpy.serialization import serialize_message

from node_harness import FRAME_ID, Running, accounting
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.engines.base import Engine
from lingbot_depth_ros.ros import messages

ENGINE = "guided"
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def running(context, captures):
    running = Running(context, {"engine": ENGINE}, namespace="/bad")
    running.send_info(captures[0].info_msg(100 * SECOND))
    yield running
    running.close()


class Stamps:
    """Strictly increasing stamps, so no case is taken for a late frame by accident."""

    def __init__(self, start_s: int = 100) -> None:
        self.next_ns = start_s * SECOND

    def __call__(self) -> int:
        self.next_ns += SECOND // 30
        return self.next_ns


stamps = Stamps()


def image(array: np.ndarray, encoding: str, stamp: int):
    return messages.image_msg(encode_image(array, encoding), messages.make_header(stamp, FRAME_ID))


def expect_drop(running, color, depth, reason: str) -> None:
    before = running.node.drops.snapshot().get(reason, 0)
    running.probe.send(color, depth)
    running.probe.wait_for(lambda _: running.node.drops.snapshot().get(reason, 0) >= before + 2,
                           20, f"a pair dropped as {reason}")


def expect_published(running, capture, stamp: int | None = None) -> None:
    stamp = stamps() if stamp is None else stamp
    running.probe.send(capture.color_msg(stamp), capture.depth_msg(stamp))
    running.probe.wait_for(lambda r: any(messages.stamp_ns(m.header) == stamp
                                         for m in r["depth_completed"]), 30, f"output at {stamp}")
    assert running.alive()


def test_size_mismatch_is_dropped(running, captures):
    capture, stamp = captures[0], stamps()
    small = cv2.resize(capture.raw_depth, (320, 240), interpolation=cv2.INTER_NEAREST)
    expect_drop(running, capture.color_msg(stamp), image(small, "16UC1", stamp), "size_mismatch")
    expect_published(running, capture)


@pytest.mark.parametrize("which, encoding", [("color", "yuv422"), ("color", "32FC1"),
                                             ("depth", "rgb8"), ("depth", "bayer_rggb8")])
def test_unknown_or_wrong_encoding_is_dropped(running, captures, which, encoding):
    capture, stamp = captures[1], stamps()
    color, depth = capture.color_msg(stamp), capture.depth_msg(stamp)
    (color if which == "color" else depth).encoding = encoding
    expect_drop(running, color, depth, "bad_encoding")
    expect_published(running, capture)


def test_truncated_buffer_is_dropped(running, captures):
    capture, stamp = captures[2], stamps()
    depth = capture.depth_msg(stamp)
    depth.data = bytes(depth.data)[: len(depth.data) // 2]
    expect_drop(running, capture.color_msg(stamp), depth, "truncated_buffer")
    expect_published(running, capture)


@pytest.mark.parametrize("cut", [3, 40, 1000])  # inside the CDR header, the header, the pixels
def test_serialized_message_cut_short_does_not_stop_the_node(running, captures, cut):
    """Bytes from a misbehaving publisher: the RMW drops what it cannot deserialize before
    any callback, and the node goes on publishing the next good frame."""
    capture, stamp = captures[2], stamps()
    running.probe.depth_pub.publish(serialize_message(capture.depth_msg(stamp))[:cut])
    expect_published(running, capture)


@pytest.mark.parametrize("fill", [0, 65535])  # no data at all; everything beyond max_depth
def test_all_invalid_depth_is_dropped(running, captures, fill):
    capture, stamp = captures[3], stamps()
    invalid = np.full_like(capture.raw_depth, fill)
    expect_drop(running, capture.color_msg(stamp), image(invalid, "16UC1", stamp), "all_invalid_depth")
    expect_published(running, capture)


def test_stamp_jumping_back_restarts_pairing(running, captures):
    """A bag loop: frames from 60 s earlier are paired and published again, not dropped."""
    expect_published(running, captures[0])
    back = stamps.next_ns - 60 * SECOND
    expect_published(running, captures[1], stamp=back)
    stamps.next_ns = back
    expect_published(running, captures[2])


def test_slightly_older_frame_is_counted_late(running, captures):
    expect_published(running, captures[0])
    older = stamps.next_ns - SECOND // 2
    before = running.node.drops.snapshot().get("late", 0)
    running.probe.send(captures[0].color_msg(older), captures[0].depth_msg(older))
    running.probe.wait_for(lambda _: running.node.drops.snapshot().get("late", 0) >= before + 2,
                           20, "two late images")
    expect_published(running, captures[1])


def test_distortion_is_reported_once(running, captures):
    running.send_info(captures[0].info_msg(stamps.next_ns, distortion=(0.12, -0.05, 0.0, 0.0, 0.01)))
    expect_published(running, captures[0])
    values = running.diagnostics()
    assert "non-zero distortion" in values["distortion"]


class FailingEngine(Engine):
    """A neural engine whose runtime breaks mid-stream (as a lost GPU would)."""

    name = "torch"

    def _predict(self, frame, timings):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_engine_failing_at_run_time_falls_back_to_guided(context, captures):
    running = Running(context, namespace="/bad_engine", engine=FailingEngine())
    try:
        running.send_info(captures[0].info_msg(stamps.next_ns))
        assert running.node.engine.name == "torch"
        expect_published(running, captures[1])
        assert running.node.engine.name == "guided"
        values = running.diagnostics()
        assert "failed at run time" in values["fallback"] and values["engine"] == "guided"
        expect_published(running, captures[2])
    finally:
        running.close()


def test_everything_received_is_accounted_for(running):
    running.wait_idle()
    values = running.diagnostics()
    received, accounted = accounting(values)
    assert received == accounted
    assert int(values["dropped.bad_encoding"]) >= 8 and int(values["dropped.size_mismatch"]) >= 2
    assert running.alive()


def test_missing_camera_info_publishes_depth_only(context, captures):
    running = Running(context, {"engine": ENGINE}, namespace="/noinfo")
    try:
        stamp = 500 * SECOND
        running.probe.send(captures[0].color_msg(stamp), captures[0].depth_msg(stamp))
        running.probe.wait_outputs("depth_completed", 1)
        running.probe.wait_outputs("depth_completed/source_mask", 1)
        running.wait_idle()
        values = running.diagnostics()
        assert values["frames_without_camera_info"] == "1" and values["published"] == "1"
        received = running.probe.received
        for topic in ("depth_completed/points", "depth_completed/camera_info", "depth_completed/rgbd"):
            assert not received[topic], topic
    finally:
        running.close()


def test_engine_that_fails_to_load_falls_back_to_guided(context, captures, tmp_path):
    missing = str(tmp_path / "missing.onnx")
    running = Running(context, {"engine": "onnxruntime", "onnx": missing}, namespace="/fallback")
    try:
        assert running.node.engine.name == "guided"
        running.send_info(captures[0].info_msg(SECOND))
        expect_published(running, captures[0])
        values = running.diagnostics()
        assert "failed to load" in values["fallback"] and values["engine"] == "guided"
        rgbd = running.probe.wait_outputs("depth_completed/rgbd", 1)[0] \
            if messages.CompletedRGBD is not None else None
        assert rgbd is None or rgbd.engine == "guided"
    finally:
        running.close()
