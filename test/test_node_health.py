"""/diagnostics tells the truth over real DDS: WARN before input, OK while publishing, ERROR
while input arrives and nothing is published (naming the dominant drop reason), STALE when
input stops; the latched engine topic; `fallback: none`; images without partner expire."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from node_harness import FRAME_ID, Running, accounting, make_context, rclpy
from lingbot_depth_ros.core.codec import decode_fields, encode_image
from lingbot_depth_ros.core.errors import EngineFailedError
from lingbot_depth_ros.engines.base import Engine
from lingbot_depth_ros.ros import messages
from lingbot_depth_ros.ros.diagnostics import STATUS_NAME
from lingbot_depth_ros.ros.node import LingbotDepthNode
from rclpy.parameter import Parameter

SECOND = 1_000_000_000
FAST = {"health_timeout": 1.0, "diagnostics_period": 0.2}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def status_of(running) -> DiagnosticStatus | None:
    """The newest /diagnostics status of the running node, None before any."""
    name = running.node.get_fully_qualified_name()
    with running.probe._cond:
        arrays = list(running.probe.received["diagnostics"])
    for array in reversed(arrays):
        for status in array.status:
            if status.name == STATUS_NAME and status.hardware_id == name:
                return status
    return None


def wait_level(running, level: bytes, timeout: float = 15.0, while_doing=None) -> DiagnosticStatus:
    """Until the node's newest status has `level`; `while_doing()` runs between checks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if while_doing is not None:
            while_doing()
        status = status_of(running)
        if status is not None and status.level == level:
            return status
        time.sleep(0.1)
    raise AssertionError(f"no status of level {level!r} within {timeout} s; last: {status_of(running)}")


class Sender:
    """Pairs with increasing stamps (10 per second of stamps)."""

    def __init__(self, running, capture, start_s: int, depth_frame_id: str = FRAME_ID) -> None:
        self.running, self.capture, self.depth_frame_id = running, capture, depth_frame_id
        self.stamp = start_s * SECOND

    def __call__(self) -> None:
        self.stamp += SECOND // 10
        depth = self.capture.depth_msg(self.stamp)
        depth.header.frame_id = self.depth_frame_id
        self.running.probe.send(self.capture.color_msg(self.stamp), depth)


def test_levels_follow_the_stream(context, captures):
    running = Running(context, FAST, namespace="/health")
    try:
        status = wait_level(running, DiagnosticStatus.WARN)
        assert "no input received yet" in status.message
        running.send_info(captures[0].info_msg(100 * SECOND))
        good = Sender(running, captures[0], 100)
        good()
        running.probe.wait_outputs("depth_completed", 1, timeout=30)
        wait_level(running, DiagnosticStatus.OK, while_doing=good)
        # Inputs keep coming, every pair is dropped (depth from another optical frame).
        bad = Sender(running, captures[0], 200, depth_frame_id="camera_depth_optical_frame")
        status = wait_level(running, DiagnosticStatus.ERROR, while_doing=bad)
        assert "nothing published" in status.message and "unregistered" in status.message
        # Inputs stop: STALE.
        status = wait_level(running, DiagnosticStatus.STALE)
        assert "no input for" in status.message
        # They come back and are published: OK again.
        good.stamp = 300 * SECOND
        wait_level(running, DiagnosticStatus.OK, while_doing=good)
        running.wait_idle()
        values = running.diagnostics()
        assert int(values["dropped.unregistered"]) >= 2
        received, accounted = accounting(values)
        assert received == accounted
    finally:
        running.close()


def test_unregistered_pairs_are_used_when_assumed_registered(context, captures):
    running = Running(context, {"assume_registered": True}, namespace="/assumed")
    try:
        running.send_info(captures[0].info_msg(SECOND))
        Sender(running, captures[0], 1, depth_frame_id="camera_depth_optical_frame")()
        out = running.probe.wait_outputs("depth_completed", 1, timeout=30)[0]
        assert out.header.frame_id == FRAME_ID  # the colour image's
        assert "dropped.unregistered" not in running.diagnostics()
    finally:
        running.close()


def test_image_without_partner_expires_as_unpaired(context, captures):
    running = Running(context, {"pair_timeout": 0.2}, namespace="/unpaired")
    try:
        stamp = 50 * SECOND
        running.probe.send(captures[0].color_msg(stamp), None)  # its depth never comes
        running.probe.wait_for(lambda _: running.node.drops.snapshot().get("unpaired", 0) >= 1,
                               10, "the colour image to expire")
        values = running.diagnostics()
        assert values["queued"] == "0" and values["dropped.unpaired"] == "1"
        received, accounted = accounting(values)
        assert received == accounted == 1
    finally:
        running.close()


def latched_engine_text(context, namespace: str, timeout: float = 10.0) -> str:
    """Subscribe after the fact: a latched topic still hands over its last message."""
    got: list[str] = []
    node = rclpy.create_node("engine_reader", context=context, namespace=namespace)
    node.create_subscription(String, "depth_completed/engine", lambda m: got.append(m.data), LATCHED)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert got, "no latched engine status"
        return got[-1]
    finally:
        executor.shutdown()
        node.destroy_node()


def test_engine_topic_is_latched(context):
    running = Running(context, namespace="/engine_topic")
    try:
        assert latched_engine_text(context, "/engine_topic") == "guided"
    finally:
        running.close()


def test_fallback_is_warn_and_on_the_engine_topic(context, tmp_path):
    missing = str(tmp_path / "missing.onnx")
    running = Running(context, {"engine": "onnxruntime", "onnx": missing, **FAST},
                      namespace="/fell_back")
    try:
        text = latched_engine_text(context, "/fell_back")
        assert text.startswith("guided; fallback: engine 'onnxruntime' failed to load")
        status = wait_level(running, DiagnosticStatus.WARN)
        assert "fell back to guided" in status.message
    finally:
        running.close()


def test_fallback_none_stops_at_start_with_a_clear_error(context, tmp_path):
    missing = str(tmp_path / "missing.onnx")
    params = [Parameter("engine", value="onnxruntime"), Parameter("onnx", value=missing),
              Parameter("fallback", value="none")]
    with pytest.raises(EngineFailedError, match=r"failed to load.*fallback: none"):
        LingbotDepthNode(context=context, namespace="/hard", parameter_overrides=params)


class FailingEngine(Engine):
    """A neural engine whose runtime breaks mid-stream (as a lost GPU would)."""

    name = "torch"

    def _predict(self, frame, timings):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_fallback_none_at_run_time_stops_the_node(captures):
    own = make_context(__name__ + ".hard")  # the node shuts its context down
    running = Running(own, {"fallback": "none"}, namespace="/hard_run", engine=FailingEngine())
    try:
        running.send_info(captures[0].info_msg(SECOND))
        Sender(running, captures[0], 1)()
        deadline = time.monotonic() + 20
        while own.ok() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not own.ok(), "the node did not shut down"
        assert "failed at run time" in running.node.fatal_error
        assert "fallback: none" in running.node.stats.failure
        assert running.node.drops.snapshot().get("engine_failed") == 2
    finally:
        for executor, thread in running._executors:
            thread.join(timeout=5.0)
        running.node.runner.close()


def test_infinities_are_kept_and_not_filled(context, captures):
    """REP 117: +Inf (too far) and -Inf (too close) stay as they are, NaN holes are filled,
    and the cloud has no point at either."""
    running = Running(context, namespace="/infinities")
    try:
        capture = captures[0]
        metres = capture.raw_depth.astype(np.float32) / 1000.0
        metres[metres == 0] = np.nan
        metres[10:40, 10:60] = np.inf
        metres[100:130, 200:260] = -np.inf
        metres[200:240, 300:360] = np.nan  # an ordinary hole
        stamp = 7 * SECOND
        running.send_info(capture.info_msg(stamp))
        depth = messages.image_msg(encode_image(metres, "32FC1"), messages.make_header(stamp, FRAME_ID))
        running.probe.send(capture.color_msg(stamp), depth)
        out = decode_fields(running.probe.wait_outputs("depth_completed", 1, 30)[0])
        mask = decode_fields(running.probe.wait_outputs("depth_completed/source_mask", 1, 30)[0])
        cloud = running.probe.wait_outputs("depth_completed/points", 1, 30)[0]
        assert np.all(np.isposinf(out[10:40, 10:60])) and np.all(np.isneginf(out[100:130, 200:260]))
        assert np.isinf(out).sum() == 30 * 50 + 30 * 60  # nowhere else
        assert np.all(np.isfinite(out[200:240, 300:360]))  # the hole is filled
        assert np.all(mask[10:40, 10:60] == 0) and np.all(mask[100:130, 200:260] == 0)
        points = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(
            cloud.height, cloud.width, 4)
        assert np.all(np.isnan(points[10:40, 10:60, :3])) and np.all(np.isnan(points[100:130, 200:260, :3]))
        assert not np.isinf(points[..., :3]).any()
    finally:
        running.close()


def test_fallback_none_process_exits_with_one_clear_line(tmp_path):
    """As a user starts it: `-p fallback:=none` with a broken engine ends the process with
    exit code 2 and a one-line reason, no traceback."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "lingbot_depth_node"), "--ros-args",
         "-r", "__ns:=/hard_process", "-p", "engine:=onnxruntime",
         "-p", f"onnx:={tmp_path / 'missing.onnx'}", "-p", "fallback:=none"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "failed to load" in done.stderr and "fallback: none" in done.stderr


def test_images_missing_before_the_node_are_estimated_from_stamp_gaps(context, captures):
    running = Running(context, {"diagnostics_period": 0.2}, namespace="/gaps")
    try:
        running.send_info(captures[0].info_msg(10 * SECOND))
        sender = Sender(running, captures[0], 10)
        for _ in range(8):
            sender()
        sender.stamp += 3 * SECOND // 10  # three frames the camera took never arrive
        for _ in range(3):
            sender()
        running.probe.wait_for(lambda _: min(running.node.stats.received[k] for k in ("color", "depth")) >= 11,
                               20, "the node to receive every image sent")
        running.wait_idle()
        values = running.diagnostics()
        assert values["color_missing_before_node"] == values["depth_missing_before_node"] == "3"
        received, accounted = accounting(values)
        assert received == accounted == 22
    finally:
        running.close()
