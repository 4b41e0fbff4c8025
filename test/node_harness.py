"""Real rclpy/DDS plumbing for the node tests: a private context, the node and a probe node
(publishes camera messages, records every output) spinning in their own threads.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from lingbot_depth_ros.core.captures import read_intrinsics, read_raw_depth, read_rgb, rgb_path  # noqa: E402
from lingbot_depth_ros.core.codec import decode_fields, encode_image  # noqa: E402
from lingbot_depth_ros.core.outputs import CameraInfoFields  # noqa: E402
from lingbot_depth_ros.ros import messages  # noqa: E402
from lingbot_depth_ros.ros.diagnostics import parse_values  # noqa: E402
from lingbot_depth_ros.ros.node import LingbotDepthNode  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAME_ID = "camera_color_optical_frame"
OUTPUT_TOPICS = {
    "depth_completed": Image,
    "depth_completed/camera_info": CameraInfo,
    "depth_completed/source_mask": Image,
    "depth_completed/points": PointCloud2,
}
if messages.CompletedRGBD is not None:
    OUTPUT_TOPICS["depth_completed/rgbd"] = messages.CompletedRGBD
DEFAULT_INPUTS = {"color": "color/image_raw", "depth": "depth/image_raw", "info": "color/camera_info"}
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


def domain_id(module_name: str) -> int:
    """A ROS domain per test process and module, so parallel test runs do not cross-talk."""
    return 1 + (os.getpid() * 31 + zlib.crc32(module_name.encode())) % 200


def make_context(module_name: str) -> Context:
    context = Context()
    rclpy.init(context=context, domain_id=domain_id(module_name))
    return context


class Capture:
    """One shared capture as the camera driver would publish it."""

    def __init__(self, index: int) -> None:
        folder = EXAMPLES / str(index)
        self.rgb = read_rgb(rgb_path(folder))
        self.raw_depth = read_raw_depth(folder / "raw_depth.png")
        self.K = read_intrinsics(folder / "intrinsics.txt")
        self.height, self.width = self.raw_depth.shape

    def color_msg(self, stamp_ns: int, encoding: str = "rgb8") -> Image:
        array = self.rgb if encoding == "rgb8" else np.ascontiguousarray(self.rgb[:, :, ::-1])
        return messages.image_msg(encode_image(array, encoding), messages.make_header(stamp_ns, FRAME_ID))

    def depth_msg(self, stamp_ns: int) -> Image:
        return messages.image_msg(encode_image(self.raw_depth, "16UC1"),
                                  messages.make_header(stamp_ns, FRAME_ID))

    def info_msg(self, stamp_ns: int, distortion=(0.0,) * 5) -> CameraInfo:
        fields = CameraInfoFields.from_K(self.K, self.height, self.width)
        msg = messages.camera_info_msg(fields, messages.make_header(stamp_ns, FRAME_ID))
        msg.d = [float(v) for v in distortion]
        return msg


def load_captures() -> list[Capture]:
    return [Capture(i) for i in range(4)]


class Probe:
    """The camera driver and the consumers in one node: publishes inputs, records outputs."""

    def __init__(self, context: Context, namespace: str = "", topics: dict | None = None) -> None:
        self.node = rclpy.create_node("probe", context=context, namespace=namespace or "/")
        topics = {**DEFAULT_INPUTS, **(topics or {})}
        self.color_pub = self.node.create_publisher(Image, topics["color"], RELIABLE)
        self.depth_pub = self.node.create_publisher(Image, topics["depth"], RELIABLE)
        self.info_pub = self.node.create_publisher(CameraInfo, topics["info"], RELIABLE)
        self.received: dict[str, list] = defaultdict(list)
        self._cond = threading.Condition()
        for topic, msg_type in OUTPUT_TOPICS.items():
            self.node.create_subscription(msg_type, topic, self._recorder(topic), RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("diagnostics"), 50)

    def _recorder(self, topic: str):
        def record(msg) -> None:
            with self._cond:
                self.received[topic].append(msg)
                self._cond.notify_all()
        return record

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.received), timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; got "
                                     f"{ {k: len(v) for k, v in self.received.items()} }")

    def wait_outputs(self, topic: str, count: int, timeout: float = 20.0) -> list:
        self.wait_for(lambda r: len(r[topic]) >= count, timeout, f"{count} on {topic}")
        with self._cond:
            return list(self.received[topic])

    def diagnostics(self, hardware_id: str, timeout: float = 10.0) -> dict[str, str]:
        """Values of the next /diagnostics status of node `hardware_id` from now on."""
        with self._cond:
            seen = len(self.received["diagnostics"])

        def arrived(received) -> bool:
            return any(parse_values(m, hardware_id) for m in received["diagnostics"][seen:])

        self.wait_for(arrived, timeout, f"diagnostics of {hardware_id}")
        with self._cond:
            fresh = [parse_values(m, hardware_id) for m in self.received["diagnostics"][seen:]]
        return [v for v in fresh if v][-1]

    def send(self, color: Image | None, depth: Image | None, info: CameraInfo | None = None) -> None:
        if info is not None:
            self.info_pub.publish(info)
        if color is not None:
            self.color_pub.publish(color)
        if depth is not None:
            self.depth_pub.publish(depth)


class Running:
    """Node and probe spinning in their own executor threads until `close`."""

    def __init__(self, context: Context, overrides: dict | None = None, namespace: str = "/test",
                 cli_args: list[str] | None = None, connect: bool = True,
                 topics: dict | None = None, engine=None) -> None:
        """`engine`: an engine object the node uses instead of loading its configured one."""
        params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
        self.node = LingbotDepthNode(engine=engine, context=context, namespace=namespace,
                                     parameter_overrides=params, cli_args=cli_args)
        self.probe = Probe(context, namespace=namespace, topics=topics)
        self._executors = []
        for node in (self.node, self.probe.node):
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            thread = threading.Thread(target=_spin, args=(executor,), daemon=True)
            thread.start()
            self._executors.append((executor, thread))
        if connect:
            try:
                self.wait_connected()
            except AssertionError:
                self.close()
                raise

    def wait_connected(self, timeout: float = 20.0) -> None:
        """Until every probe publisher and node output has its counterpart matched."""
        probe, node = self.probe, self.node
        publishers = [probe.color_pub, probe.depth_pub, probe.info_pub]
        outputs = [p for p in (node.depth_pub, node.info_pub, node.mask_pub, node.cloud_pub,
                               node.rgbd_pub) if p is not None]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in publishers + outputs):
                return
            time.sleep(0.05)
        raise AssertionError("DDS discovery between probe and node did not complete")

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until the node holds no pair in its runner (admitted or in flight)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.node.runner.pending == 0:
                return
            time.sleep(0.02)
        raise AssertionError("node did not become idle")

    def send_info(self, info: CameraInfo, timeout: float = 10.0) -> None:
        """Publish camera info and wait until the node has it (topics are not ordered)."""
        before = self.node.stats.received["camera_info"]
        self.probe.info_pub.publish(info)
        self.probe.wait_for(lambda _: self.node.stats.received["camera_info"] > before, timeout,
                            "the node to receive camera info")

    def diagnostics(self, timeout: float = 10.0) -> dict[str, str]:
        return self.probe.diagnostics(self.node.get_fully_qualified_name(), timeout)

    def alive(self) -> bool:
        return self.node.runner.alive() and all(t.is_alive() for _, t in self._executors)

    def close(self) -> None:
        for executor, thread in self._executors:
            executor.shutdown(timeout_sec=5.0)
            thread.join(timeout=5.0)
        self.node.destroy_node()
        self.probe.node.destroy_node()


def _spin(executor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def accounting(values: dict[str, str]) -> tuple[int, int]:
    """(images received, images published*2 + dropped + queued) from diagnostics values."""
    received = int(values["color_received"]) + int(values["depth_received"])
    accounted = 2 * int(values["published"]) + int(values["dropped_total"]) + int(values["queued"])
    return received, accounted


def image_array(msg: Image) -> np.ndarray:
    return decode_fields(msg)
