"""RealSenseRosSource over real rclpy/DDS: a librealsense software device streams a shared
capture; a second node subscribes to the realsense-ros topic names and /diagnostics. Then
lingbot_depth_node with `source: realsense` completes a librealsense recording."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

# rclpy first: see import_pyrealsense2 (loaded the other way round, the process crashes at exit)
rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from lingbot_depth_ros.sources.realsense_streams import (  # noqa: E402
    SourceUnavailableError, import_pyrealsense2)

try:
    # not importorskip: that lets an ImportError other than ModuleNotFoundError through
    # (pyrealsense2 installed but Debian's libusb-1.0-0 missing errors at collection)
    import_pyrealsense2()
except SourceUnavailableError as exc:
    pytest.skip(str(exc), allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lingbot_depth_ros.core.captures import (  # noqa: E402
    read_intrinsics, read_raw_depth, read_rgb, rgb_path)
from lingbot_depth_ros.core.codec import decode_fields  # noqa: E402
from lingbot_depth_ros.ros import messages  # noqa: E402
from lingbot_depth_ros.sources.realsense import RealSenseSettings  # noqa: E402
from lingbot_depth_ros.sources.realsense_ros import RAW_TOPICS, RealSenseRosSource  # noqa: E402
from software_camera import DeviceStream, SoftwareCamera, SoftwareCameraSpec  # noqa: E402

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(index: int):
    folder = EXAMPLES / str(index)
    return (read_rgb(rgb_path(folder)), read_raw_depth(folder / "raw_depth.png"),
            read_intrinsics(folder / "intrinsics.txt"))


def spin(context, node) -> tuple:
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def run():
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return executor, thread


def test_raw_streams_are_published_under_realsense_ros_names(context):
    rgb, raw, K = load_example(1)
    camera = SoftwareCamera(SoftwareCameraSpec(color_K=K, color_size=(640, 480), serial="4242"))
    node = rclpy.create_node("lingbot_depth_node", context=context, namespace="/")
    listener = rclpy.create_node("listener", context=context, namespace="/")
    received = defaultdict(list)
    cond = threading.Condition()

    def recorder(key):
        def record(msg):
            with cond:
                received[key].append(msg)
                cond.notify_all()
        return record

    for key, topic in RAW_TOPICS["color"].items():
        kind = CameraInfo if key.endswith("info") else Image
        listener.create_subscription(kind, "/" + topic, recorder(key), RELIABLE)
    listener.create_subscription(DiagnosticArray, "/diagnostics", recorder("diagnostics"), 50)
    handed = []
    ros_source = RealSenseRosSource(
        node, RealSenseSettings(frame_timeout_s=5.0),
        open_stream=lambda: DeviceStream(camera.device, queue_size=16), status_period_s=0.2)
    spinning = [spin(context, n) for n in (node, listener)]
    try:
        deadline = time.monotonic() + 20
        while not all(p.get_subscription_count() for p in ros_source._pubs.values()):
            assert time.monotonic() < deadline, "DDS discovery did not complete"
            time.sleep(0.05)
        ros_source.start(on_frame=lambda *msgs: handed.append(msgs))
        while not camera.streaming:
            time.sleep(0.01)
        for _ in range(5):
            camera.push(rgb, raw)
            time.sleep(0.03)
        with cond:
            # 5 pairs make 4 captures: the syncer cannot pair the very first frames.
            arrived = cond.wait_for(
                lambda: all(len(received[k]) == 4 for k in RAW_TOPICS["color"]), 20)
            assert arrived, {k: len(v) for k, v in received.items()}
        color, depth = received["color"][-1], received["depth"][-1]
        info, depth_info = received["color_info"][-1], received["depth_info"][-1]
        assert color.encoding == "rgb8" and depth.encoding == "16UC1"
        assert np.array_equal(decode_fields(color), rgb)
        assert np.array_equal(decode_fields(depth), raw)  # mm, registered: unchanged
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K, rtol=1e-6)
        assert list(depth_info.k) == list(info.k)
        assert color.header == depth.header == info.header
        assert color.header.frame_id == "camera_color_optical_frame"
        # The node gets exactly what was published, one triple per capture.
        last = received["color"][-1].header
        assert len(handed) == 4 and handed[-1][0].stamp_ns == messages.stamp_ns(last)
        assert handed[-1][0].frame_id == last.frame_id and handed[-1][2].fields.k == tuple(info.k)
        with cond:
            assert cond.wait_for(lambda: any(
                s.message == "streaming" and s.hardware_id == "4242"
                for m in received["diagnostics"] for s in m.status), 10)
    finally:
        ros_source.close()
        for executor, thread in spinning:
            executor.shutdown(timeout_sec=5.0)
            thread.join(timeout=5.0)
        node.destroy_node()
        listener.destroy_node()
    assert ros_source.status.state.value == "stopped"


def test_node_with_source_realsense_completes_the_camera_frames(context, tmp_path):
    from rclpy.parameter import Parameter

    from lingbot_depth_ros.ros.node import LingbotDepthNode
    from software_camera import record_db3

    rgb, raw, K = load_example(3)
    path = tmp_path / "camera.db3"
    record_db3(path, SoftwareCameraSpec(color_K=K, color_size=(640, 480)), [(rgb, raw)] * 6)
    overrides = {"source": "realsense", "engine": "nearest", "realsense.recording": str(path),
                 "realsense.repeat_playback": True}  # loops until the listener is matched
    node = LingbotDepthNode(context=context, namespace="/", parameter_overrides=[
        Parameter(k, value=v) for k, v in overrides.items()])
    listener = rclpy.create_node("listener", context=context, namespace="/")
    completed, raw_depth = [], []
    listener.create_subscription(Image, "/depth_completed", completed.append, RELIABLE)
    listener.create_subscription(Image, "/" + RAW_TOPICS["color"]["depth"], raw_depth.append,
                                 RELIABLE)
    spinning = [spin(context, n) for n in (node, listener)]
    try:
        deadline = time.monotonic() + 30
        while len(completed) < 3:
            assert time.monotonic() < deadline, f"{len(completed)} completed depth images"
            time.sleep(0.05)
        assert node.undeclared_overrides == []  # realsense.* are the node's parameters
        assert not list(node.subscriptions)  # frames come from the camera, not from topics
        out = completed[-1]
        assert out.encoding == "32FC1" and (out.height, out.width) == (480, 640)
        assert out.header.frame_id == "camera_color_optical_frame"
        assert out.header.stamp in [m.header.stamp for m in raw_depth]
        depth = decode_fields(out)
        valid = (raw >= 100) & (raw <= 10000)  # the node's default 0.1-10 m range
        np.testing.assert_allclose(depth[valid], raw[valid] * 0.001, rtol=1e-6)
        assert np.isfinite(depth).mean() > valid.mean()  # and it filled the holes
    finally:
        node.destroy_node()
        for executor, thread in spinning:
            executor.shutdown(timeout_sec=5.0)
            thread.join(timeout=5.0)
        listener.destroy_node()
